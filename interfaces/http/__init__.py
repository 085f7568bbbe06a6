"""The HTTP edge: Litestar app, controllers, schemas and error mapping."""
