"""jobsd_lib: what the daemon and the client share.

No clock reads, no threads, no processes, no sockets: the job-spec model and its validation,
the error catalogue, the pure scheduling kernel, unit parsing, time conversions, file names and
the generated gRPC stubs. The one I/O here is reading spec files and the user database
(spec_file.py), so that the daemon and `jobs validate` read them with the same code.
"""
__version__ = "0.1.0"
__all__ = ["__version__"]
