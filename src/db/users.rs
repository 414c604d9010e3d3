//! The `users` and `user_online_status` tables: presence (a batch of users' changes, with
//! their history rows, hand-written: one `UPDATE … FROM (VALUES …)` and one `INSERT … SELECT`
//! for many users), heartbeats, the sweep of users a stopped server left online, and whether
//! the app's database has the presence columns at all.

use chrono::NaiveDateTime;
use entity::users;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, Statement,
};

use super::params::{returning_id, Params};

/// `SELECT 1`: whether the database answers.
pub async fn ping<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    db.query_one_raw(Statement::from_string(backend, "SELECT 1"))
        .await
        .map(|_| ())
}

/// A user's presence to write: `online` `Some` for going online or offline (then
/// `"isOnline"` and `"lastSeenAt"`, and `"lastHeartbeatAt"` when online), `None` for the
/// number of sockets only; always `"connectionCount"` and `"updatedAt"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceRow {
    pub user: String,
    pub online: Option<bool>,
    pub count: i32,
    pub at: NaiveDateTime,
    /// The `user_online_status` row to add with it.
    pub history: Option<HistoryRow>,
}

/// A `user_online_status` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub id: String,
    pub online: bool,
    pub at: NaiveDateTime,
    pub device: Option<String>,
    pub ip: Option<String>,
}

/// Writes `rows` (one per user at most) in two statements; returns the users whose row
/// exists. History rows are added only for users that exist.
pub(crate) async fn write_presence<C: ConnectionTrait>(
    db: &C,
    rows: &[&PresenceRow],
) -> Result<Vec<String>, DbErr> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let mut p = Params::new(backend, rows.len() * 5);
    let mut sql = String::from(
        r#"UPDATE "users" AS u SET "isOnline" = CASE WHEN v.column2 THEN v.column3 ELSE u."isOnline" END, "lastSeenAt" = CASE WHEN v.column2 THEN v.column4 ELSE u."lastSeenAt" END, "lastHeartbeatAt" = CASE WHEN v.column2 AND v.column3 THEN v.column4 ELSE u."lastHeartbeatAt" END, "connectionCount" = v.column5, "updatedAt" = v.column4 FROM ("#,
    );
    p.values(&mut sql, rows, |r, row| {
        r.push(row.user.clone());
        r.push(row.online.is_some());
        r.push(row.online.unwrap_or(false));
        r.push(row.at);
        r.push(row.count);
    });
    sql.push_str(r#") AS v WHERE u."id" = v.column1 RETURNING "#);
    sql.push_str(&returning_id(backend, "u"));
    let found: Vec<String> = db
        .query_all_raw(p.statement(sql))
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "id"))
        .collect::<Result<_, _>>()?;
    let history: Vec<(&String, &HistoryRow)> = rows
        .iter()
        .filter_map(|r| r.history.as_ref().map(|h| (&r.user, h)))
        .collect();
    if !history.is_empty() {
        let mut p = Params::new(backend, history.len() * 6);
        let mut sql = String::from(
            r#"INSERT INTO "user_online_status" ("id","userId","isOnline","timestamp","deviceInfo","ipAddress") SELECT v.column1, u."id", v.column3, v.column4, v.column5, v.column6 FROM ("#,
        );
        p.values(&mut sql, &history, |r, (user, h)| {
            r.push(h.id.clone());
            r.push((*user).clone());
            r.push(h.online);
            r.push(h.at);
            r.push(h.device.clone());
            r.push(h.ip.clone());
        });
        sql.push_str(r#") AS v JOIN "users" AS u ON u."id" = v.column2"#);
        db.execute_raw(p.statement(sql)).await?;
    }
    Ok(found)
}

/// `"lastHeartbeatAt"` (and `"updatedAt"`) = `at` for `users`, in one statement.
pub(crate) async fn write_heartbeats<C: ConnectionTrait>(
    db: &C,
    users: &[&String],
    at: NaiveDateTime,
) -> Result<(), DbErr> {
    if users.is_empty() {
        return Ok(());
    }
    users::Entity::update_many()
        .col_expr(users::Column::LastHeartbeatAt, Expr::value(at))
        .col_expr(users::Column::UpdatedAt, Expr::value(at))
        .filter(users::Column::Id.is_in(users.iter().map(|u| u.as_str())))
        .exec(db)
        .await
        .map(|_| ())
}

/// Users marked online whose `"lastHeartbeatAt"` is before `cutoff` (at most 1000).
pub(crate) async fn stale_online_users<C: ConnectionTrait>(
    db: &C,
    cutoff: NaiveDateTime,
) -> Result<Vec<String>, DbErr> {
    users::Entity::find()
        .select_only()
        .column(users::Column::Id)
        .filter(users::Column::IsOnline.eq(true))
        .filter(users::Column::LastHeartbeatAt.lt(cutoff))
        .limit(1000)
        .into_tuple()
        .all(db)
        .await
}

/// Sets `users` offline if they are still online with a heartbeat before `cutoff`, with a
/// history row each; returns how many changed.
pub(crate) async fn set_stale_offline<C: ConnectionTrait>(
    db: &C,
    users: &[String],
    cutoff: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<usize, DbErr> {
    let backend = db.get_database_backend();
    let mut p = Params::new(backend, users.len() + 3);
    let mut sql = String::from(
        r#"UPDATE "users" SET "isOnline" = false, "connectionCount" = 0, "lastSeenAt" = "#,
    );
    p.bind(&mut sql, now);
    sql.push_str(r#", "updatedAt" = "#);
    p.bind(&mut sql, now);
    sql.push_str(r#" WHERE "isOnline" = true AND "lastHeartbeatAt" < "#);
    p.bind(&mut sql, cutoff);
    sql.push_str(r#" AND "id" IN ("#);
    for (i, user) in users.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        p.bind(&mut sql, user.clone());
    }
    sql.push_str(r#") RETURNING "id""#);
    let changed: Vec<String> = db
        .query_all_raw(p.statement(sql))
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "id"))
        .collect::<Result<_, _>>()?;
    if !changed.is_empty() {
        let history: Vec<HistoryRow> = changed
            .iter()
            .map(|_| HistoryRow {
                id: crate::ids::cuid(),
                online: false,
                at: now,
                device: None,
                ip: None,
            })
            .collect();
        let rows: Vec<(&String, &HistoryRow)> = changed.iter().zip(history.iter()).collect();
        let mut p = Params::new(backend, rows.len() * 4);
        let mut sql = String::from(
            r#"INSERT INTO "user_online_status" ("id","userId","isOnline","timestamp") "#,
        );
        p.values(&mut sql, &rows, |r, (user, h)| {
            r.push(h.id.clone());
            r.push((*user).clone());
            r.push(false);
            r.push(h.at);
        });
        db.execute_raw(p.statement(sql)).await?;
    }
    Ok(changed.len())
}

/// Whether the database has the presence columns and the history table (an app older than
/// its presence migration does not).
pub(crate) async fn has_presence_columns<C: ConnectionTrait>(db: &C) -> bool {
    let backend = db.get_database_backend();
    let probes = [
        r#"SELECT "isOnline", "lastSeenAt", "connectionCount", "lastHeartbeatAt" FROM "users" WHERE 1 = 0"#,
        r#"SELECT "id", "userId", "isOnline", "timestamp", "deviceInfo", "ipAddress" FROM "user_online_status" WHERE 1 = 0"#,
    ];
    for probe in probes {
        if db
            .query_all_raw(Statement::from_string(backend, probe))
            .await
            .is_err()
        {
            return false;
        }
    }
    true
}
