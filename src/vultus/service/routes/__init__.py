"""HTTP routes, one module per area; each calls the library only through
ServiceState.library, on the inference pool."""
