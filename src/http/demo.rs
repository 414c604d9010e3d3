//! The demo page: `GET /demo` serves one self-contained page (embedded in the binary) with
//! two chat panes, Alice's and Bob's, the users `courier seed-demo` creates (and the server
//! itself on its first start on the embedded database, see [`seed_if_missing`]); `GET
//! /demo/session` gives the page their ids, their connection, a fresh token for each and
//! whether each is online.
//!
//! Both routes exist only while Courier runs with the built-in development secret (see
//! [`enabled`]): anyone can forge tokens then anyway, and with a real secret nobody may be
//! handed tokens over HTTP, whatever `COURIER_ENV` says. In that mode every route answers
//! only requests for a loopback host name ([`crate::http::loopback_host_only`]).

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use entity::{connections, users};
use log::warn;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait,
};
use serde::Serialize;
use serde_json::json;

use crate::auth::AuthSettings;
use crate::auth::Authenticator;
use crate::chat::protocol::message_json::iso_millis;
use crate::chat::users::Users;
use crate::db::connections::ACTIVE;
use crate::db::seed::{self, EMAIL_DOMAIN};

/// The page: HTML with inline CSS and JavaScript (its own small Engine.IO / Socket.IO client,
/// WebSocket only), no external resources.
pub(crate) const PAGE: &str = include_str!("demo.html");

/// How long the tokens handed to the page are valid (it fetches new ones to reconnect).
pub(crate) const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// What the page tells the user when there are no demo users yet.
pub(crate) const NOT_SEEDED: &str =
    "No demo users yet: run `cargo run --release -- seed-demo` first, then reload this page.";

/// What the demo routes need.
pub struct Demo {
    db: DatabaseConnection,
    auth: Authenticator,
    /// The chat's registry: who is online, as the presence events say.
    users: Users,
}

/// The demo's state, signing with `auth` (the built-in development secret: the caller
/// serves the demo with it only; with any other secret, no demo routes).
pub fn enabled(auth: &AuthSettings, db: &DatabaseConnection, users: &Users) -> web::Data<Demo> {
    web::Data::new(Demo {
        db: db.clone(),
        auth: Authenticator::new(&auth.secret, auth.leeway),
        users: users.clone(),
    })
}

/// Makes the demo users and their connection when `db` has no demo pair; `Some` with what
/// was made, `None` when there was one already.
pub(crate) async fn seed_if_missing(db: &DatabaseConnection) -> Result<Option<seed::Demo>, DbErr> {
    if latest_pair(db).await?.is_some() {
        return Ok(None);
    }
    seed::seed_demo(db).await.map(Some)
}

/// Registers `GET /demo` and `GET /demo/session` when `demo` is `Some`; nothing otherwise.
pub fn routes(demo: Option<web::Data<Demo>>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        if let Some(demo) = demo {
            cfg.service(web::resource("/demo").route(web::get().to(page)))
                .service(
                    web::resource("/demo/session")
                        .app_data(demo)
                        .route(web::get().to(session)),
                );
        }
    }
}

/// `GET /demo`: the page.
async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self' ws: wss:; img-src data:; base-uri 'none'; form-action 'none'",
        ))
        .body(PAGE)
}

/// One demo user as the page sees it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DemoUser {
    id: String,
    name: String,
    token: String,
    /// Online as the presence events tell it (the chat's registry, not `users.isOnline`,
    /// which is written after the event and would race with it).
    is_online: bool,
    /// `users.lastSeenAt`.
    last_seen_at: String,
}

/// The answer of `GET /demo/session`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DemoSession {
    connection_id: String,
    /// Alice, then Bob.
    users: [DemoUser; 2],
    token_ttl_seconds: u64,
}

/// `GET /demo/session`: the most recent demo pair with a fresh token each; 404 with a
/// `{message}` saying to run `seed-demo` when there is none.
async fn session(demo: web::Data<Demo>) -> HttpResponse {
    let pair = match latest_pair(&demo.db).await {
        Ok(Some(pair)) => pair,
        Ok(None) => return json_error(HttpResponse::NotFound(), NOT_SEEDED),
        Err(e) => {
            warn!("demo session: cannot read the demo users: {e}");
            return json_error(
                HttpResponse::InternalServerError(),
                "Cannot read the demo users from the database (see the server's log).",
            );
        }
    };
    let online = (
        demo.users.is_online(&pair.alice.id).await,
        demo.users.is_online(&pair.bob.id).await,
    );
    let issue = |user: users::Model, fallback: &str, is_online: bool| {
        demo.auth.issue(&user.id, TOKEN_TTL).map(|token| DemoUser {
            name: user.name.unwrap_or_else(|| fallback.to_string()),
            last_seen_at: iso_millis(&user.last_seen_at),
            id: user.id,
            token,
            is_online,
        })
    };
    let users = match (
        issue(pair.alice, "Alice", online.0),
        issue(pair.bob, "Bob", online.1),
    ) {
        (Ok(alice), Ok(bob)) => [alice, bob],
        (Err(e), _) | (_, Err(e)) => {
            warn!("demo session: cannot sign a token: {e}");
            return json_error(HttpResponse::InternalServerError(), "Cannot sign a token.");
        }
    };
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(DemoSession {
            connection_id: pair.connection,
            users,
            token_ttl_seconds: TOKEN_TTL.as_secs(),
        })
}

/// The id of the demo user called `name` (`alice` or `bob`, any case) of the latest demo
/// pair, if there is one.
pub(crate) async fn demo_user(
    db: &DatabaseConnection,
    name: &str,
) -> Result<Option<String>, DbErr> {
    let Some(pair) = latest_pair(db).await? else {
        return Ok(None);
    };
    Ok(match name.to_ascii_lowercase().as_str() {
        "alice" => Some(pair.alice.id),
        "bob" => Some(pair.bob.id),
        _ => None,
    })
}

fn json_error(mut builder: actix_web::HttpResponseBuilder, message: &str) -> HttpResponse {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "message": message }))
}

/// A demo pair found in the database.
struct Pair {
    alice: users::Model,
    bob: users::Model,
    connection: String,
}

/// The most recently created ACTIVE connection between a demo Alice and a demo Bob (users
/// whose emails `seed-demo` wrote: `alice.<id>@demo.courier.invalid`, `bob.<id>@…`).
async fn latest_pair(db: &DatabaseConnection) -> Result<Option<Pair>, DbErr> {
    use connections::Column as C;
    let ids_of = |name: &str| {
        users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .filter(users::Column::Email.like(format!("{name}.%@{EMAIL_DOMAIN}")))
            .into_query()
    };
    let between = |a: &str, b: &str| {
        Condition::all()
            .add(C::User1Id.in_subquery(ids_of(a)))
            .add(C::User2Id.in_subquery(ids_of(b)))
    };
    let Some(connection) = connections::Entity::find()
        .filter(C::Status.eq(ACTIVE))
        .filter(
            Condition::any()
                .add(between("alice", "bob"))
                .add(between("bob", "alice")),
        )
        .order_by_desc(C::CreatedAt)
        .order_by_desc(C::Id)
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let members = users::Entity::find()
        .filter(users::Column::Id.is_in([connection.user1_id, connection.user2_id]))
        .all(db)
        .await?;
    let (mut alice, mut bob) = (None, None);
    for user in members {
        if user.email.starts_with("alice.") {
            alice = Some(user);
        } else if user.email.starts_with("bob.") {
            bob = Some(user);
        }
    }
    Ok(match (alice, bob) {
        (Some(alice), Some(bob)) => Some(Pair {
            alice,
            bob,
            connection: connection.id,
        }),
        _ => None,
    })
}
