"""The one server-side error translation: JobsdError -> gRPC status with ErrorInfo detail.

Anything else that escapes a handler is logged with its traceback and answered `internal`:
the daemon never dies of a request.

The interceptor also parses each request itself and checks it against jobsd_lib.limits before
the servicer sees it: bytes that are no message (or a string that is not UTF-8) and numbers or
strings out of bounds are all `invalid_argument`, never gRPC's own UNKNOWN or an overflow deep
in the store. Handlers can rely on every field being in range.
"""
from __future__ import annotations

import functools
import inspect
import logging

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from jobsd_lib.errors import DOMAIN, InternalError, InvalidArgument, JobsdError, grpc_status_name
from jobsd_lib.limits import check_request

__all__ = ["ErrorInterceptor", "to_status"]

log = logging.getLogger("jobsd.api")


# The status travels in trailers, which gRPC caps (16 KiB by default): an over-long message or
# metadata value would turn the refusal into RESOURCE_EXHAUSTED. Errors quote values shortly
# themselves (limits.quote); these caps are the backstop.
MAX_MESSAGE, MAX_METADATA_VALUE = 1000, 200


def to_status(error: JobsdError) -> grpc.Status:
    code = grpc.StatusCode[grpc_status_name(error.code)]
    detail = any_pb2.Any()
    metadata = {k: v[:MAX_METADATA_VALUE] for k, v in error.metadata.items()}
    detail.Pack(error_details_pb2.ErrorInfo(reason=error.code.value, domain=DOMAIN, metadata=metadata))
    message = error.message if len(error.message) <= MAX_MESSAGE else error.message[:MAX_MESSAGE] + "..."
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=[detail]))


def _request(deserializer, raw: bytes, method: str):  # noqa: ANN001, ANN202
    """The request message from its bytes, checked (jobsd_lib.limits); InvalidArgument otherwise."""
    try:
        request = deserializer(raw) if deserializer else raw
    except Exception:  # noqa: BLE001 - protobuf's DecodeError, whatever the implementation
        raise InvalidArgument(f"the request is not a valid {method.rsplit('/', 1)[-1]} message "
                              "(truncated, or a string that is not UTF-8)") from None
    if not isinstance(request, bytes):
        check_request(request)
    return request


async def _unimplemented(context, method: str) -> None:  # noqa: ANN001
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented by this jobsd version")


def _internal(method: str) -> JobsdError:
    log.exception("internal error in %s", method)
    return InternalError(f"internal error in jobsd while handling {method}; the daemon log has the details")


def _wrap_unary(behavior, deserializer, method: str):  # noqa: ANN001, ANN202
    @functools.wraps(behavior)
    async def wrapper(raw, context):  # noqa: ANN001, ANN202
        try:
            return await behavior(_request(deserializer, raw, method), context)
        except JobsdError as error:
            await context.abort_with_status(to_status(error))
        except NotImplementedError:  # a generated servicer stub: say so, it is not a fault
            await _unimplemented(context, method)
        except grpc.aio.AbortError:  # the servicer answered with context.abort (health's NOT_FOUND): no fault
            raise
        except Exception:  # noqa: BLE001 - answered as `internal`, logged with traceback
            await context.abort_with_status(to_status(_internal(method)))
    return wrapper


def _wrap_stream(behavior, deserializer, method: str):  # noqa: ANN001, ANN202
    @functools.wraps(behavior)
    async def wrapper(raw, context):  # noqa: ANN001, ANN202
        try:
            result = behavior(_request(deserializer, raw, method), context)
            if inspect.isasyncgen(result):  # e.g. the standard health service's Watch
                async for message in result:
                    await context.write(message)
            elif inspect.isawaitable(result):
                await result
        except JobsdError as error:
            await context.abort_with_status(to_status(error))
        except NotImplementedError:
            await _unimplemented(context, method)
        except grpc.aio.AbortError:
            raise
        except Exception:  # noqa: BLE001
            await context.abort_with_status(to_status(_internal(method)))
    return wrapper


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation, handler_call_details):  # noqa: ANN001, ANN201
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method, parse = handler_call_details.method, handler.request_deserializer
        # No deserializer for gRPC: the wrapper gets the raw bytes and parses them itself, so a
        # request that does not parse is answered like any other bad argument.
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(_wrap_unary(handler.unary_unary, parse, method),
                                                       None, handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(_wrap_stream(handler.unary_stream, parse, method),
                                                        None, handler.response_serializer)
        return handler
