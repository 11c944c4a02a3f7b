"""One handler per verb (pueue's message_handler/): each RPC's logic over an explicit Context.

Handlers run on the event-loop thread only, read through the context, write only through its
journal, and raise JobsdError subclasses that the API layer turns into gRPC statuses.
"""
