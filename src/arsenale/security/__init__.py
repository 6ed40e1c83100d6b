"""Security: API tokens with roles and projects (the server's authentication lives in `server.auth`)."""
