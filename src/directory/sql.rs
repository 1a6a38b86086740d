//! A directory that is the CRM's own database: PostgreSQL, MySQL/MariaDB or SQLite, one
//! parameterised query returning the matching users. The matched value is always bound as
//! the query's one parameter, never written into its text.

use super::{Found, MatchField, Row, SourceError, UserSource};
use crate::identity::CrmUser;
use async_trait::async_trait;
use futures_util::TryStreamExt;
use sqlx::{AssertSqlSafe, Column, Row as _};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Rows counted before a lookup stops reading: past two the answer is "ambiguous" anyway;
/// the count only goes to the log.
pub const MAX_ROWS_COUNTED: usize = 100;

/// Connections held open to a CRM database: sign-ins and re-checks are rare next to
/// requests, so a few suffice.
const MAX_CONNECTIONS: u32 = 4;

enum Pool {
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
    Sqlite(sqlx::SqlitePool),
}

/// Users found by an SQL query on the CRM's database.
pub struct SqlSource {
    pool: Pool,
    /// Normalises a returned `login` column the way the matched value was.
    field: MatchField,
    query: Arc<str>,
    timeout: Duration,
}

pub use crate::config::database_kind as kind_of;

impl SqlSource {
    /// A source over `url` (connections are made on first use, so a database that is down
    /// at start-up does not stop the gateway). SQLite databases are opened read-only.
    pub fn new(
        url: &str,
        query: &str,
        field: MatchField,
        timeout: Duration,
    ) -> Result<Self, SourceError> {
        let bad = |e: sqlx::Error| SourceError::Down(format!("database URL: {e}"));
        let pool = match kind_of(url) {
            Some("postgres") => {
                Pool::Postgres(pool_options(timeout).connect_lazy_with(
                    sqlx::postgres::PgConnectOptions::from_str(url).map_err(bad)?,
                ))
            }
            Some("mysql") => {
                let url = url.replacen("mariadb:", "mysql:", 1);
                Pool::MySql(pool_options(timeout).connect_lazy_with(
                    sqlx::mysql::MySqlConnectOptions::from_str(&url).map_err(bad)?,
                ))
            }
            Some("sqlite") => Pool::Sqlite(
                pool_options(timeout).connect_lazy_with(
                    sqlx::sqlite::SqliteConnectOptions::from_str(url)
                        .map_err(bad)?
                        .read_only(true),
                ),
            ),
            _ => {
                return Err(SourceError::Down(
                    "the URL must start with postgres://, mysql://, mariadb:// or sqlite:".into(),
                ))
            }
        };
        Ok(Self {
            pool,
            field,
            query: query.into(),
            timeout,
        })
    }

    async fn run(&self, key: &str) -> Result<Found, SourceError> {
        let mut rows = Vec::new();
        // Each driver's row type decodes its own column types (PostgreSQL arrays, MySQL
        // TINYINT booleans), so the reading is written once per driver by this macro.
        macro_rules! collect {
            ($pool:expr) => {{
                let mut stream = sqlx::query(AssertSqlSafe(self.query.clone()))
                    .bind(key)
                    .fetch($pool);
                let mut count = 0;
                while let Some(row) = stream.try_next().await.map_err(down)? {
                    // A `login` column, when the query returns one, is compared here as
                    // well: the database's collation may fold case or accents that the
                    // match field keeps apart.
                    if let Some(i) = column_index(&row, "login") {
                        let login: Option<String> =
                            row.try_get(i).map_err(|e| column("login", e))?;
                        if login.and_then(|l| self.field.normalise(&l)).as_deref() != Some(key) {
                            continue;
                        }
                    }
                    count += 1;
                    if rows.is_empty() {
                        rows.push(decode!(row));
                    }
                    if count >= MAX_ROWS_COUNTED {
                        break;
                    }
                }
                count
            }};
        }
        macro_rules! decode {
            ($row:expr) => {{
                let row = &$row;
                // Column names compared without case: MySQL and SQLite keep an alias's case.
                let at = |name: &str| column_index(row, name);
                let id_at = at("id").ok_or_else(|| column_missing("id"))?;
                let id = row
                    .try_get::<String, _>(id_at)
                    .or_else(|_| row.try_get::<i64, _>(id_at).map(|n| n.to_string()))
                    .or_else(|_| row.try_get::<i32, _>(id_at).map(|n| n.to_string()))
                    .map_err(|e| column("id", e))?;
                if id.is_empty() {
                    return Err(column_missing("id"));
                }
                let text = |name: &str| -> Result<Option<String>, SourceError> {
                    match at(name) {
                        Some(i) => row
                            .try_get::<Option<String>, _>(i)
                            .map_err(|e| column(name, e)),
                        None => Ok(None),
                    }
                };
                let roles = match at("roles") {
                    Some(i) => match row.try_get::<Option<String>, _>(i) {
                        Ok(text) => split_roles(text.as_deref().unwrap_or("")),
                        Err(e) => array_roles!(row, i, e)?,
                    },
                    None => Vec::new(),
                };
                let active = match at("active") {
                    Some(i) => row
                        .try_get::<Option<bool>, _>(i)
                        .or_else(|_| row.try_get::<Option<i64>, _>(i).map(|n| n.map(|n| n != 0)))
                        .or_else(|_| row.try_get::<Option<i8>, _>(i).map(|n| n.map(|n| n != 0)))
                        .map_err(|e| column("active", e))?
                        // NULL is not a yes: a user is active only when the CRM says so.
                        .unwrap_or(false),
                    None => true,
                };
                Row {
                    user: CrmUser {
                        id,
                        display_name: text("display_name")?,
                        email: text("email")?,
                        roles,
                    },
                    active,
                }
            }};
        }
        let count = match &self.pool {
            Pool::Postgres(pool) => {
                macro_rules! array_roles {
                    // Not text: a text[] column.
                    ($row:expr, $i:expr, $text_error:expr) => {{
                        drop($text_error);
                        $row.try_get::<Option<Vec<String>>, _>($i)
                            .map(|r| r.unwrap_or_default())
                            .map_err(|e| column("roles", e))
                    }};
                }
                collect!(pool)
            }
            Pool::MySql(pool) => {
                macro_rules! array_roles {
                    ($row:expr, $i:expr, $e:expr) => {
                        Err(column("roles", $e))
                    };
                }
                collect!(pool)
            }
            Pool::Sqlite(pool) => {
                macro_rules! array_roles {
                    ($row:expr, $i:expr, $e:expr) => {
                        Err(column("roles", $e))
                    };
                }
                collect!(pool)
            }
        };
        Ok(match count {
            0 => Found::Nobody,
            1 => Found::One(rows.pop().expect("one row decoded")),
            n => Found::Several(n),
        })
    }
}

fn pool_options<DB: sqlx::Database>(timeout: Duration) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .min_connections(0)
        .acquire_timeout(timeout)
}

/// Roles given as text: separated by commas, semicolons or whitespace.
fn split_roles(text: &str) -> Vec<String> {
    text.split([',', ';', ' ', '\t', '\n'])
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

fn column(name: &str, e: sqlx::Error) -> SourceError {
    SourceError::Data(format!("column `{name}`: {e}"))
}

fn column_missing(name: &str) -> SourceError {
    SourceError::Data(format!("the query returned no `{name}` (or an empty one)"))
}

fn down(e: sqlx::Error) -> SourceError {
    SourceError::Down(format!("query failed: {e}"))
}

/// The index of the column called `name`, compared without case.
fn column_index<R: sqlx::Row>(row: &R, name: &str) -> Option<usize> {
    row.columns()
        .iter()
        .position(|c| c.name().eq_ignore_ascii_case(name))
}

#[async_trait]
impl UserSource for SqlSource {
    async fn find(&self, key: &str) -> Result<Found, SourceError> {
        match tokio::time::timeout(self.timeout, self.run(key)).await {
            Ok(result) => result,
            Err(_) => Err(SourceError::Down(format!(
                "query took longer than {:?}",
                self.timeout
            ))),
        }
    }

    async fn ping(&self) -> Result<(), SourceError> {
        let ping = async {
            match &self.pool {
                Pool::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(drop),
                Pool::MySql(p) => sqlx::query("SELECT 1").execute(p).await.map(drop),
                Pool::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(drop),
            }
        };
        match tokio::time::timeout(self.timeout, ping).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SourceError::Down(format!("CRM database: {e}"))),
            Err(_) => Err(SourceError::Down("CRM database: no answer in time".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_split_on_commas_semicolons_and_spaces() {
        assert_eq!(
            split_roles("sales, admin;support  x"),
            ["sales", "admin", "support", "x"]
        );
        assert!(split_roles("  ").is_empty());
    }
}
