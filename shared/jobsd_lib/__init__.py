"""jobsd_lib: what the daemon and the client share.

No I/O, no clock reads, no threads: the job-spec model and its validation, the error
catalogue, the pure scheduling kernel, unit parsing and the generated gRPC stubs.
"""
__version__ = "0.1.0"
__all__ = ["__version__"]
