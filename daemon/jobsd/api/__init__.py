"""gRPC servicers: convert in, call the service, convert out."""
