"""The one server-side error translation: JobsdError -> gRPC status with ErrorInfo detail.

Anything else that escapes a handler is logged with its traceback and answered `internal`:
the daemon never dies of a request.
"""
from __future__ import annotations

import functools
import inspect
import logging

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from jobsd_lib.errors import DOMAIN, ErrorCode, JobsdError, grpc_status_name

__all__ = ["ErrorInterceptor", "to_status"]

log = logging.getLogger("jobsd.api")


def to_status(error: JobsdError) -> grpc.Status:
    code = grpc.StatusCode[grpc_status_name(error.code)]
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=error.code.value, domain=DOMAIN, metadata=error.metadata))
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=error.message, details=[detail]))


async def _unimplemented(context, method: str) -> None:  # noqa: ANN001
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented by this jobsd version")


def _internal(method: str) -> JobsdError:
    log.exception("internal error in %s", method)
    error = JobsdError(f"internal error in jobsd while handling {method}; the daemon log has the details")
    error.code = ErrorCode.INTERNAL
    return error


def _wrap_unary(behavior, method: str):  # noqa: ANN001, ANN202
    @functools.wraps(behavior)
    async def wrapper(request, context):  # noqa: ANN001, ANN202
        try:
            return await behavior(request, context)
        except JobsdError as error:
            await context.abort_with_status(to_status(error))
        except NotImplementedError:  # a generated servicer stub: say so, it is not a fault
            await _unimplemented(context, method)
        except Exception:  # noqa: BLE001 - answered as `internal`, logged with traceback
            await context.abort_with_status(to_status(_internal(method)))
    return wrapper


def _wrap_stream(behavior, method: str):  # noqa: ANN001, ANN202
    @functools.wraps(behavior)
    async def wrapper(request, context):  # noqa: ANN001, ANN202
        try:
            result = behavior(request, context)
            if inspect.isasyncgen(result):  # e.g. the standard health service's Watch
                async for message in result:
                    await context.write(message)
            elif inspect.isawaitable(result):
                await result
        except JobsdError as error:
            await context.abort_with_status(to_status(error))
        except NotImplementedError:
            await _unimplemented(context, method)
        except Exception:  # noqa: BLE001
            await context.abort_with_status(to_status(_internal(method)))
    return wrapper


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation, handler_call_details):  # noqa: ANN001, ANN201
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(_wrap_unary(handler.unary_unary, method),
                                                       handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(_wrap_stream(handler.unary_stream, method),
                                                        handler.request_deserializer, handler.response_serializer)
        return handler
