"""The pricing store: connection and migrations (db), SQL variable binding (sqlvars), panel SQL (sql/),
versioned migrations (migrations/) and re-applied functions and views (functions/)."""
