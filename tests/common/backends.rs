//! One test on several databases: [`on_backends!`](crate::common::backends::on_backends).

/// For each backend in brackets (`sqlite`, `postgres`, `prisma_layout`), a module of that
/// name holding one `#[actix_web::test]` per function listed, named after it, which calls
/// the function with the backend's [`Kind`](crate::common::db::Kind):
///
/// ```ignore
/// async fn whole_flow(kind: Kind) { .. }
/// on_backends!([sqlite, postgres, prisma_layout] whole_flow, error_strings);
/// ```
///
/// makes `sqlite::whole_flow`, `postgres::whole_flow`, `prisma_layout::whole_flow`, …
/// (`scripts/pgbouncer-tests` runs the `postgres::` and `prisma_layout::` tests of
/// `tests/chat.rs`, `tests/actors/` and `tests/presence.rs` again through PgBouncer).
#[allow(unused_macros)]
macro_rules! on_backends {
    ([$($backend:ident),+ $(,)?] $($name:ident),+ $(,)?) => {
        $crate::common::backends::on_backends!(@each [$($backend),+] [$($name),+]);
    };
    (@each [$backend:ident $(, $rest:ident)*] $names:tt) => {
        $crate::common::backends::on_backends!(@module $backend $names);
        $crate::common::backends::on_backends!(@each [$($rest),*] $names);
    };
    (@each [] $names:tt) => {};
    (@module $backend:ident [$($name:ident),+]) => {
        mod $backend {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::common::backends::on_backends!(@kind $backend)).await
                }
            )+
        }
    };
    (@kind sqlite) => { $crate::common::db::Kind::Sqlite };
    (@kind postgres) => { $crate::common::db::Kind::Postgres };
    (@kind prisma_layout) => { $crate::common::db::Kind::PrismaPostgres };
}

#[allow(unused_imports)]
pub(crate) use on_backends;
