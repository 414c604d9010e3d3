//! What the hand-written statements share: placeholders for either backend, `VALUES` lists,
//! PostgreSQL arrays (rows travel as one array per column through `unnest`, so a statement's
//! text does not depend on how many rows it carries and is prepared once).

use sea_orm::sea_query::ArrayType;
use sea_orm::{DbBackend, Statement, Value};

/// Placeholders for one backend: `$1, $2, …` on PostgreSQL, `?` on SQLite.
pub(super) struct Params {
    backend: DbBackend,
    values: Vec<Value>,
}

impl Params {
    pub(super) fn new(backend: DbBackend, capacity: usize) -> Self {
        Params {
            backend,
            values: Vec::with_capacity(capacity),
        }
    }

    /// Binds `value` and writes its placeholder into `sql`.
    pub(super) fn bind(&mut self, sql: &mut String, value: impl Into<Value>) {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => {
                sql.push('$');
                sql.push_str(&self.values.len().to_string());
            }
            _ => sql.push('?'),
        }
    }

    /// A `VALUES` list of `rows`, each row's values bound by `row`.
    pub(super) fn values<T>(
        &mut self,
        sql: &mut String,
        rows: &[T],
        mut row: impl FnMut(&mut Row<'_>, &T),
    ) {
        sql.push_str("VALUES ");
        for (i, item) in rows.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            let mut r = Row {
                params: self,
                sql,
                first: true,
            };
            row(&mut r, item);
            sql.push(')');
        }
    }

    pub(super) fn statement(self, sql: String) -> Statement {
        Statement::from_sql_and_values(self.backend, sql, self.values)
    }
}

/// One row of a `VALUES` list being written.
pub(super) struct Row<'a> {
    params: &'a mut Params,
    sql: &'a mut String,
    first: bool,
}

impl Row<'_> {
    pub(super) fn push(&mut self, value: impl Into<Value>) {
        if !self.first {
            self.sql.push(',');
        }
        self.first = false;
        self.params.bind(self.sql, value);
    }
}

/// A PostgreSQL array of `items` of type `ty`. The driver binds arrays without NULL
/// elements only: nullable columns travel with a mask (see `db::messages::insert_messages`).
pub(super) fn pg_array(ty: ArrayType, items: impl Iterator<Item = Value>) -> Value {
    Value::Array(ty, Some(Box::new(items.collect())))
}

/// A text array; absent values become `""` (their NULL travels in a mask).
pub(super) fn text_array<'a>(items: impl Iterator<Item = Option<&'a String>>) -> Value {
    pg_array(
        ArrayType::String,
        items.map(|s| Value::String(Some(s.cloned().unwrap_or_default()))),
    )
}

/// The target's `"id"` in a `RETURNING` of an `UPDATE … FROM` (see `db::messages::mark_read`).
pub(super) fn returning_id(backend: DbBackend, alias: &str) -> String {
    match backend {
        DbBackend::Postgres => format!(r#"{alias}."id""#),
        _ => r#""id""#.to_string(),
    }
}
