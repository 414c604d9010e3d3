//! What the admin UI's client recognizes: its namespace and the messages of a refused login.

/// The admin UI's namespace.
pub const ADMIN_NAMESPACE: &str = "/admin";

/// The `connect_error` message of a refused login, the one the UI recognizes.
pub const INVALID_CREDENTIALS: &str = "invalid credentials";

/// The `connect_error` message past `admin.login_rate`.
pub const TOO_MANY_ATTEMPTS: &str = "too many login attempts, try again later";

/// The `connect_error` message past `admin.max_connections`.
pub const TOO_MANY_ADMINS: &str = "too many admin connections";
