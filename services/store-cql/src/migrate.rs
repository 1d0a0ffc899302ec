//! Versioned schema migrations: `migrations/NNNN_name.cql`, compiled into the binary and
//! applied in order by [`migrate`], which records each applied version in `schema_migrations`.
//! [`check`] is what [`CqlStore::connect`](crate::CqlStore::connect) runs to refuse a keyspace
//! that is missing any of them.
//!
//! Every statement is idempotent, so a migration interrupted half-way is simply applied again:
//! tables are created `IF NOT EXISTS`, and an `ALTER TABLE t ADD c type` is skipped when the
//! column is already there (checked in `system_schema.columns`: `ADD IF NOT EXISTS` is new in
//! Cassandra 5.0 and not something ScyllaDB documents). Schema changes should come from one
//! `chorus migrate` at a time: concurrent DDL from several clients is something Cassandra
//! handles poorly.

use std::time::Duration;

use scylla::client::session::Session;

use crate::{CqlConfig, CqlError, error::setup_step, session};

struct Migration {
    version: u32,
    name: &'static str,
    cql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        cql: include_str!("../migrations/0001_init.cql"),
    },
    Migration {
        version: 2,
        name: "ownership",
        cql: include_str!("../migrations/0002_ownership.cql"),
    },
    Migration {
        version: 3,
        name: "features",
        cql: include_str!("../migrations/0003_features.cql"),
    },
];

/// The schema version this binary needs: its newest migration.
pub const SCHEMA_VERSION: u32 = 3;

/// The bookkeeping tables, created before any migration runs.
const BOOKKEEPING: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, name text, applied_at_ms bigint)",
    "CREATE TABLE IF NOT EXISTS settings (name text PRIMARY KEY, value text)",
];

/// Schema changes wait for every node to agree; poll for that often (a single node agrees at
/// once, and the driver's default of 200 ms would dominate a migration).
const SCHEMA_POLL: Duration = Duration::from_millis(20);

/// DDL is slower than a request; give each statement this much at least.
const MIN_DDL_TIMEOUT: Duration = Duration::from_secs(30);

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub keyspace: String,
    /// The keyspace did not exist and was created with the configured replication.
    pub created_keyspace: bool,
    /// Versions applied by this run, ascending.
    pub applied: Vec<u32>,
    /// Versions that were already recorded, ascending.
    pub already_present: Vec<u32>,
}

/// Creates the keyspace if it is missing, records the bucket size (or checks it against the
/// recorded one), and applies every migration not yet recorded, in order. Running it again
/// applies nothing.
pub async fn migrate(config: &CqlConfig) -> Result<MigrationReport, CqlError> {
    config.validate()?;
    let ks = &config.keyspace;
    let ddl_timeout = config.request_timeout.max(MIN_DDL_TIMEOUT);
    // Schema changes wait for schema agreement and can take seconds on a busy node: the
    // session's own per-request timeout must not cut them short either.
    let ddl_config = CqlConfig {
        request_timeout: ddl_timeout,
        ..config.clone()
    };
    let session = session::open(&ddl_config, SCHEMA_POLL).await?;
    let created_keyspace = !keyspace_exists(&session, config).await?;
    if created_keyspace {
        let create = format!(
            "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {}",
            config.replication
        );
        setup_step(
            "create keyspace",
            ddl_timeout,
            session.query_unpaged(create, ()),
        )
        .await?;
        tracing::info!(keyspace = %ks, replication = %config.replication, "created keyspace");
    }
    setup_step(
        "use keyspace",
        config.request_timeout,
        session.use_keyspace(ks.as_str(), false),
    )
    .await?;
    for stmt in BOOKKEEPING {
        setup_step("create bookkeeping table", ddl_timeout, async {
            session.query_unpaged(*stmt, ()).await
        })
        .await?;
    }
    record_bucket_size(&session, config).await?;

    let present = applied_versions(&session, config.request_timeout).await?;
    let mut report = MigrationReport {
        keyspace: ks.clone(),
        created_keyspace,
        applied: Vec::new(),
        already_present: Vec::new(),
    };
    for m in MIGRATIONS {
        if present.contains(&m.version) {
            report.already_present.push(m.version);
            continue;
        }
        for stmt in statements(m.cql) {
            let context = format!("migration {:04}_{}", m.version, m.name);
            if let Some(column) = added_column(&stmt)
                && column_present(&session, config, &column, &context).await?
            {
                continue;
            }
            setup_step(&context, ddl_timeout, session.query_unpaged(stmt, ())).await?;
        }
        setup_step(
            "record migration",
            config.request_timeout,
            session.query_unpaged(
                "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)",
                (m.version as i32, m.name, chorus_core::time::now_ms() as i64),
            ),
        )
        .await?;
        tracing::info!(keyspace = %ks, version = m.version, name = m.name, "applied migration");
        report.applied.push(m.version);
    }
    // Versions recorded by a newer binary are present too.
    report
        .already_present
        .extend(present.iter().filter(|v| **v > SCHEMA_VERSION));
    Ok(report)
}

/// Refuses a keyspace that lacks this binary's migrations or was made with another bucket
/// size. `session` has the keyspace selected.
pub(crate) async fn check(session: &Session, config: &CqlConfig) -> Result<(), CqlError> {
    let missing = || CqlError::SchemaMissing {
        keyspace: config.keyspace.clone(),
    };
    let tables = setup_step(
        "read schema",
        config.request_timeout,
        session.query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?",
            (config.keyspace.as_str(),),
        ),
    )
    .await?;
    let tables: Vec<String> = tables
        .into_rows_result()
        .map_err(|e| CqlError::query("read schema", e))?
        .rows::<(String,)>()
        .map_err(|e| CqlError::query("read schema", e))?
        .map(|r| r.map(|(t,)| t))
        .collect::<Result<_, _>>()
        .map_err(|e| CqlError::query("read schema", e))?;
    if !["schema_migrations", "settings"]
        .iter()
        .all(|t| tables.iter().any(|have| have == t))
    {
        return Err(missing());
    }
    let present = applied_versions(session, config.request_timeout).await?;
    let found = (1..=SCHEMA_VERSION)
        .take_while(|v| present.contains(v))
        .last()
        .unwrap_or(0);
    if let Some(newer) = present.iter().find(|v| **v > SCHEMA_VERSION) {
        tracing::info!(
            keyspace = %config.keyspace,
            version = newer,
            "keyspace has migrations newer than this binary; they only add to the schema"
        );
    }
    if found < SCHEMA_VERSION {
        return Err(if present.is_empty() {
            missing()
        } else {
            CqlError::SchemaOutdated {
                keyspace: config.keyspace.clone(),
                found,
                required: SCHEMA_VERSION,
            }
        });
    }
    match stored_bucket_size(session, config).await? {
        None => Err(missing()),
        Some(stored) if stored != config.bucket_size => Err(CqlError::BucketSizeMismatch {
            keyspace: config.keyspace.clone(),
            stored,
            configured: config.bucket_size,
        }),
        Some(_) => Ok(()),
    }
}

async fn keyspace_exists(session: &Session, config: &CqlConfig) -> Result<bool, CqlError> {
    let rows = setup_step(
        "read keyspaces",
        config.request_timeout,
        session.query_unpaged(
            "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?",
            (config.keyspace.as_str(),),
        ),
    )
    .await?;
    let rows = rows
        .into_rows_result()
        .map_err(|e| CqlError::query("read keyspaces", e))?;
    Ok(rows.rows_num() > 0)
}

/// Records the configured bucket size if none is, then checks that the recorded one is it.
async fn record_bucket_size(session: &Session, config: &CqlConfig) -> Result<(), CqlError> {
    if stored_bucket_size(session, config).await?.is_none() {
        // A lightweight transaction, so two first migrations cannot record different sizes.
        setup_step(
            "record bucket size",
            config.request_timeout,
            session.query_unpaged(
                "INSERT INTO settings (name, value) VALUES ('bucket_size', ?) IF NOT EXISTS",
                (config.bucket_size.to_string(),),
            ),
        )
        .await?;
    }
    match stored_bucket_size(session, config).await? {
        Some(stored) if stored == config.bucket_size => Ok(()),
        Some(stored) => Err(CqlError::BucketSizeMismatch {
            keyspace: config.keyspace.clone(),
            stored,
            configured: config.bucket_size,
        }),
        None => Err(CqlError::query(
            "record bucket size",
            "the settings row is missing right after it was written",
        )),
    }
}

async fn stored_bucket_size(
    session: &Session,
    config: &CqlConfig,
) -> Result<Option<u64>, CqlError> {
    let mut stmt =
        scylla::statement::Statement::new("SELECT value FROM settings WHERE name = 'bucket_size'");
    // Serial: sees the outcome of the lightweight transaction that recorded it.
    stmt.set_consistency(session::serial_read(config.consistency));
    let rows = setup_step(
        "read settings",
        config.request_timeout,
        session.query_unpaged(stmt, ()),
    )
    .await?;
    let value = rows
        .into_rows_result()
        .map_err(|e| CqlError::query("read settings", e))?
        .maybe_first_row::<(String,)>()
        .map_err(|e| CqlError::query("read settings", e))?;
    value
        .map(|(v,)| {
            v.parse::<u64>()
                .map_err(|e| CqlError::query("read settings", format!("bucket_size {v:?}: {e}")))
        })
        .transpose()
}

async fn applied_versions(session: &Session, timeout: Duration) -> Result<Vec<u32>, CqlError> {
    let rows = setup_step(
        "read schema_migrations",
        timeout,
        session.query_unpaged("SELECT version FROM schema_migrations", ()),
    )
    .await?;
    let mut versions: Vec<u32> = rows
        .into_rows_result()
        .map_err(|e| CqlError::query("read schema_migrations", e))?
        .rows::<(i32,)>()
        .map_err(|e| CqlError::query("read schema_migrations", e))?
        .map(|r| r.map(|(v,)| v.max(0) as u32))
        .collect::<Result<_, _>>()
        .map_err(|e| CqlError::query("read schema_migrations", e))?;
    versions.sort_unstable();
    Ok(versions)
}

/// A column that an `ALTER TABLE table ADD column type` statement adds.
#[derive(Debug, PartialEq, Eq)]
struct AddedColumn {
    table: String,
    column: String,
    cql_type: String,
}

fn added_column(stmt: &str) -> Option<AddedColumn> {
    let words: Vec<&str> = stmt.split_whitespace().collect();
    match words.as_slice() {
        [alter, table_kw, table, add, column, cql_type]
            if alter.eq_ignore_ascii_case("alter")
                && table_kw.eq_ignore_ascii_case("table")
                && add.eq_ignore_ascii_case("add") =>
        {
            Some(AddedColumn {
                table: table.to_ascii_lowercase(),
                column: column.to_ascii_lowercase(),
                cql_type: cql_type.to_ascii_lowercase(),
            })
        }
        _ => None,
    }
}

/// Whether the column an `ADD` would create exists already (from an interrupted run). One of
/// another type is an error: the keyspace was changed by hand.
async fn column_present(
    session: &Session,
    config: &CqlConfig,
    c: &AddedColumn,
    context: &str,
) -> Result<bool, CqlError> {
    let rows = setup_step(
        context,
        config.request_timeout,
        session.query_unpaged(
            "SELECT type FROM system_schema.columns \
             WHERE keyspace_name = ? AND table_name = ? AND column_name = ?",
            (
                config.keyspace.as_str(),
                c.table.as_str(),
                c.column.as_str(),
            ),
        ),
    )
    .await?;
    let found = rows
        .into_rows_result()
        .map_err(|e| CqlError::query(context, e))?
        .maybe_first_row::<(String,)>()
        .map_err(|e| CqlError::query(context, e))?;
    match found {
        None => Ok(false),
        Some((t,)) if t == c.cql_type => Ok(true),
        Some((t,)) => Err(CqlError::query(
            context,
            format!(
                "column {}.{} exists with type {t}, not {}",
                c.table, c.column, c.cql_type
            ),
        )),
    }
}

/// The statements of a migration file: `--` comment lines dropped, split at `;`.
fn statements(cql: &str) -> Vec<String> {
    let text: String = cql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_and_split_into_statements() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
            let stmts = statements(m.cql);
            assert!(!stmts.is_empty());
            for s in &stmts {
                // Every statement can run twice: a create IF NOT EXISTS, or an ADD that
                // migrate skips when its column exists.
                assert!(
                    s.starts_with("CREATE TABLE IF NOT EXISTS") || added_column(s).is_some(),
                    "{s}"
                );
                assert!(!s.contains("--"), "{s}");
            }
        }
        assert_eq!(MIGRATIONS.last().unwrap().version, SCHEMA_VERSION);
        assert_eq!(statements(MIGRATIONS[0].cql).len(), 3);
        assert_eq!(statements(MIGRATIONS[1].cql).len(), 2);
        assert_eq!(statements(MIGRATIONS[2].cql).len(), 5);
    }

    #[test]
    fn an_added_column_is_recognised_for_the_skip_check() {
        assert_eq!(
            added_column("ALTER TABLE messages ADD ext text"),
            Some(AddedColumn {
                table: "messages".into(),
                column: "ext".into(),
                cql_type: "text".into(),
            })
        );
        assert_eq!(
            added_column("ALTER TABLE messages ADD (a text, b int)"),
            None
        );
        assert_eq!(added_column("ALTER TABLE messages DROP ext"), None);
        assert_eq!(
            added_column("CREATE TABLE IF NOT EXISTS t (a text PRIMARY KEY)"),
            None
        );
    }
}
