//! Employee records: create, read, change, delete. Lists are in [`super::list`], bulk imports
//! in [`super::import`].

use time::Date;
use uuid::Uuid;

use sqlx::AssertSqlSafe;

use serde_json::{Value, json};

use super::{
    Backend, BeginWrite, Db, Error,
    audit::{Append, PENDING_COLUMNS, PENDING_PARAMS, bind_pending, erase_personal},
    on_pool,
    statement::{Param, Statement, bind_all},
    viewer::{Credential, Viewer, ViewerColumns},
};
use crate::domain::{
    audit::{Action, ActorKind, AuditContext, NewEntry},
    clock::{unix_millis, unix_now},
    employee::{EmpId, Employee, EmployeeChanges, NewEmployee, fold},
    version::Precondition,
};

const SELECT_BY_ID: &str = "SELECT emp_id, emp_name, city, country, emp_dob, id, version \
    FROM employees WHERE emp_id = $1";

const DELETED_COLUMNS: &str = "id, emp_id, emp_name, city, country, emp_dob, deleted_at, \
    deleted_by_type, deleted_by_id, deleted_seq";

/// The columns of an employee row that its archive row keeps.
const ARCHIVED_COLUMNS: &str = "id, emp_id, emp_name, city, country, emp_dob";

/// SQLite: whether the employee `$16` still has the version `$17` it was seen with. A
/// conditional write records its entry only then: its first attempt may start from a read made
/// before the write transaction.
const STILL_SEEN: &str = "SELECT 1 FROM employees WHERE emp_id = $16 AND version = $17";

/// The columns a new employee row is written with.
const INSERT_COLUMNS: &str = "emp_id, id, emp_name, city, country, emp_dob, city_folded, \
    country_folded, version";

/// A conditional write that failed inside SQLite's write transaction, which excludes every
/// other writer: it cannot happen unless something outside this server holds the database.
fn lost_write_lock() -> sqlx::Error {
    sqlx::Error::Protocol("the employee changed inside a write transaction".into())
}

/// A deleted employee in the archive.
#[derive(Debug, Clone)]
pub struct DeletedEmployee {
    pub employee: Employee,
    /// Unix seconds.
    pub deleted_at: i64,
    pub deleted_by: (ActorKind, Option<i64>),
    /// The audit entry of the deletion.
    pub deleted_seq: i64,
}

#[derive(sqlx::FromRow)]
struct DeletedRow {
    id: Uuid,
    emp_id: i64,
    emp_name: String,
    city: String,
    country: String,
    emp_dob: Date,
    deleted_at: i64,
    deleted_by_type: String,
    deleted_by_id: Option<i64>,
    deleted_seq: i64,
}

impl From<DeletedRow> for DeletedEmployee {
    fn from(r: DeletedRow) -> Self {
        DeletedEmployee {
            employee: Employee {
                emp_id: r.emp_id,
                emp_name: r.emp_name,
                city: r.city,
                country: r.country,
                emp_dob: r.emp_dob,
                id: r.id,
                version: 0,
            },
            deleted_at: r.deleted_at,
            deleted_by: (ActorKind::parse(&r.deleted_by_type), r.deleted_by_id),
            deleted_seq: r.deleted_seq,
        }
    }
}

/// What a conditional write did.
#[derive(Debug, Clone)]
pub enum Write<T> {
    Done(T),
    NotFound,
    /// `If-Match` named another version; the record as it is.
    PreconditionFailed(Employee),
}

/// An employee row as stored.
#[derive(sqlx::FromRow)]
pub(super) struct EmployeeRow {
    emp_id: i64,
    emp_name: String,
    city: String,
    country: String,
    emp_dob: Date,
    id: Uuid,
    /// Absent from list pages (which carry no per-row ETag): 0.
    #[sqlx(default)]
    version: i64,
}

impl From<EmployeeRow> for Employee {
    fn from(row: EmployeeRow) -> Self {
        Employee {
            emp_id: row.emp_id,
            emp_name: row.emp_name,
            city: row.city,
            country: row.country,
            emp_dob: row.emp_dob,
            id: row.id,
            version: row.version,
        }
    }
}

/// The viewer (see [`Credential::live_sql`]) and an employee that may not exist, in one row.
#[derive(sqlx::FromRow)]
struct ViewerRow {
    #[sqlx(flatten)]
    viewer: ViewerColumns,
    emp_id: Option<i64>,
    emp_name: Option<String>,
    city: Option<String>,
    country: Option<String>,
    emp_dob: Option<Date>,
    id: Option<Uuid>,
    version: Option<i64>,
}

impl ViewerRow {
    fn into_parts(self) -> (Viewer, Option<Employee>) {
        let employee = match (
            self.emp_id,
            self.emp_name,
            self.city,
            self.country,
            self.emp_dob,
            self.id,
        ) {
            (Some(emp_id), Some(emp_name), Some(city), Some(country), Some(emp_dob), Some(id)) => {
                Some(Employee {
                    emp_id,
                    emp_name,
                    city,
                    country,
                    emp_dob,
                    id,
                    version: self.version.unwrap_or_default(),
                })
            }
            _ => None,
        };
        (self.viewer.into_viewer(), employee)
    }
}

/// The employee `$emp_id` as stored, read on `$conn` (a pool, or a transaction's connection,
/// of either backend). `fetch_all`: see [`Db::employee_seen_by`].
macro_rules! read_employee {
    ($conn:expr, $emp_id:expr) => {
        sqlx::query_as::<_, EmployeeRow>(SELECT_BY_ID)
            .bind($emp_id.get())
            .fetch_all($conn)
            .await
            .map(|rows| rows.into_iter().next().map(Employee::from))
    };
}

/// The employee a conditional write's attempt starts from: `$seen` (`Some`: read already) or
/// read now on `$read`. Returns `NotFound` from the attempt when it is absent, and
/// `PreconditionFailed` when `$precondition` does not allow its version.
macro_rules! starting_point {
    ($read:expr, $emp_id:expr, $seen:expr, $precondition:expr) => {{
        let seen: Option<Option<Employee>> = $seen;
        let old = match seen {
            Some(old) => old,
            None => read_employee!($read, $emp_id)?,
        };
        let Some(old) = old else {
            return Ok(Write::NotFound);
        };
        if !$precondition.allows(old.version) {
            return Ok(Write::PreconditionFailed(old));
        }
        old
    }};
}

/// Conditional writes PostgreSQL attempts before giving up on an employee that keeps changing.
/// Every lost race means another write to the same employee committed in between, so only a
/// storm of writes to one record gets this far; its answer is a 503 with `Retry-After`.
const MAX_ATTEMPTS: usize = 64;

/// Runs `$attempt!(read_on, write_on, seen)`, one write conditional on the version of the
/// employee `seen` (`Some`: as read before, `None`: read it now), which is `Err(())` when the
/// row had moved on by the time of the write. The first attempt starts from `$seen`, the
/// employee as the request's credential check read it; a later one reads again. As each
/// backend needs: PostgreSQL without a transaction, again until it holds (at most
/// [`MAX_ATTEMPTS`]); SQLite in a group commit's write transaction, where nothing else writes,
/// so the second attempt always holds. The attempt must own what it uses (it may run in the
/// group commit's task). Evaluates to the `Result<$done, Error>`.
macro_rules! conditionally {
    ($db:expr, $done:ty, $attempt:ident, $seen:expr) => {{
        let seen: Option<Employee> = $seen;
        let result = match &$db.backend {
            Backend::Postgres { pool, .. } => {
                async {
                    let mut seen = Some(seen);
                    for _ in 0..MAX_ATTEMPTS {
                        let attempt: Result<$done, ()> = $attempt!(pool, pool, seen.take());
                        if let Ok(done) = attempt {
                            return Ok(done);
                        }
                    }
                    Err(Error::TimedOut(format!(
                        "the employee changed under {MAX_ATTEMPTS} attempts to write it"
                    )))
                }
                .await
            }
            Backend::Sqlite { groups, .. } => {
                groups
                    .run(move |conn| {
                        Box::pin(async move {
                            let first: Result<$done, ()> =
                                $attempt!(&mut *conn, &mut *conn, Some(seen));
                            if let Ok(done) = first {
                                return Ok(done);
                            }
                            let again: Result<$done, ()> = $attempt!(&mut *conn, &mut *conn, None);
                            again.map_err(|()| lost_write_lock())
                        })
                    })
                    .await
            }
        };
        $db.wrote(result)
    }};
}

/// `old` with `changes` applied, and the entry that records them; `None` when they change
/// nothing.
fn apply(old: &Employee, changes: &EmployeeChanges) -> Option<(Employee, NewEntry)> {
    let mut new = old.clone();
    let mut entry = NewEntry::new(Action::EmployeeUpdate, old.emp_id).record(old.id);
    if let Some(v) = &changes.emp_name
        && v.as_str() != old.emp_name
    {
        new.emp_name = v.as_str().to_owned();
        entry = entry.change("emp_name", json!(old.emp_name), json!(new.emp_name));
    }
    if let Some(v) = &changes.city
        && v.as_str() != old.city
    {
        new.city = v.as_str().to_owned();
        entry = entry.change("city", json!(old.city), json!(new.city));
    }
    if let Some(v) = &changes.country
        && v.as_str() != old.country
    {
        new.country = v.as_str().to_owned();
        entry = entry.change("country", json!(old.country), json!(new.country));
    }
    if let Some(v) = changes.emp_dob
        && v.get() != old.emp_dob
    {
        new.emp_dob = v.get();
        entry = entry.change(
            "emp_dob",
            json!(old.emp_dob.to_string()),
            json!(new.emp_dob.to_string()),
        );
    }
    (!entry.changes.is_empty()).then_some((new, entry))
}

/// The entry that records the deletion of `old`: every value it had.
fn deletion(old: &Employee) -> NewEntry {
    NewEntry::new(Action::EmployeeDelete, old.emp_id)
        .record(old.id)
        .change("emp_name", json!(old.emp_name), Value::Null)
        .change("city", json!(old.city), Value::Null)
        .change("country", json!(old.country), Value::Null)
        .change("emp_dob", json!(old.emp_dob.to_string()), Value::Null)
}

impl Db {
    /// Inserts an employee ([`Error::Conflict`] when the `emp_id` is taken), recording it.
    pub async fn insert_employee(
        &self,
        new: NewEmployee,
        ctx: &AuditContext,
    ) -> Result<Employee, Error> {
        let mut employee = Employee::new(Uuid::new_v4(), new);
        let ctx = ctx.clone();
        let entry = NewEntry::new(Action::EmployeeCreate, employee.emp_id)
            .record(employee.id)
            .change("emp_name", Value::Null, json!(employee.emp_name))
            .change("city", Value::Null, json!(employee.city))
            .change("country", Value::Null, json!(employee.country))
            .change("emp_dob", Value::Null, json!(employee.emp_dob.to_string()));
        // The entry and the row, which takes the entry's id as its version: one statement on
        // PostgreSQL (one round trip, as without the audit trail), one call on SQLite. There
        // the row goes first: a taken `emp_id` then fails before anything was written, as a
        // group commit requires.
        let text = self.per_backend(
            format!(
                "WITH p AS (INSERT INTO audit_pending ({PENDING_COLUMNS}) \
                   VALUES ({PENDING_PARAMS}) RETURNING id) \
                 INSERT INTO employees ({INSERT_COLUMNS}) \
                 SELECT $16, $17, $18, $19, $20, $21, $22, $23, p.id FROM p RETURNING version"
            ),
            format!(
                "INSERT INTO employees ({INSERT_COLUMNS}) \
                   VALUES ($16, $17, $18, $19, $20, $21, $22, $23, 0); \
                 INSERT INTO audit_pending ({PENDING_COLUMNS}) VALUES ({PENDING_PARAMS}); \
                 UPDATE employees SET version = last_insert_rowid() WHERE emp_id = $16 \
                 RETURNING version"
            ),
        );
        let e = employee.clone();
        macro_rules! insert {
            ($conn:expr) => {
                bind_pending!(
                    sqlx::query_scalar(AssertSqlSafe(text)),
                    &ctx,
                    entry,
                    unix_millis()
                )
                .bind(e.emp_id)
                .bind(e.id)
                .bind(e.emp_name.as_str())
                .bind(e.city.as_str())
                .bind(e.country.as_str())
                .bind(e.emp_dob)
                .bind(fold(&e.city))
                .bind(fold(&e.country))
                .fetch_one($conn)
                .await
            };
        }
        let version = match &self.backend {
            Backend::Postgres { pool, .. } => insert!(pool).map_err(Error::from),
            Backend::Sqlite { groups, .. } => groups
                .run(move |conn| {
                    Box::pin(async move {
                        // A taken `emp_id` fails the first statement, which SQLite undoes while
                        // keeping the group's transaction: the refusal is this write's alone.
                        match insert!(&mut *conn) {
                            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                                Ok(Err(Error::Conflict))
                            }
                            inserted => inserted.map(Ok),
                        }
                    })
                })
                .await
                .and_then(|inserted| inserted),
        };
        employee.version = self.wrote(version)?;
        Ok(employee)
    }

    /// The employee with this `emp_id`.
    pub async fn employee(&self, emp_id: EmpId) -> Result<Option<Employee>, Error> {
        let row: Option<EmployeeRow> = on_pool!(self, read, |pool| {
            sqlx::query_as(SELECT_BY_ID)
                .bind(emp_id.get())
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(Employee::from))
    }

    /// Whoever `credential` names, if it is live at `now`, and the employee `emp_id` (if any),
    /// in one round trip: the per-request credential check and the read share a query on the
    /// hottest route.
    pub async fn employee_seen_by(
        &self,
        credential: &Credential,
        emp_id: EmpId,
        now: i64,
    ) -> Result<Option<(Viewer, Option<Employee>)>, Error> {
        let mut sql = Statement::default();
        let viewer = credential.live_sql(now, &mut sql);
        let emp_id = sql.bind(Param::Int(emp_id.get()));
        sql.text = format!(
            "SELECT v.*, e.emp_id, e.emp_name, e.city, e.country, e.emp_dob, e.id, e.version \
             FROM ({viewer}) v LEFT JOIN employees e ON e.emp_id = {emp_id}"
        );
        // fetch_all, not fetch_optional: sqlx runs fetch_optional as "Execute at most one row"
        // and then sends an extra Sync to close the portal (one more message each way per
        // request, seen with strace); the key lookup yields one row at most anyway.
        let rows: Vec<ViewerRow> = match &self.backend {
            Backend::Postgres { hot, .. } => {
                let mut lease = hot.get().await?;
                let rows = bind_all(sqlx::query_as(AssertSqlSafe(sql.text)), sql.params)
                    .fetch_all(lease.conn())
                    .await;
                lease.finish(rows)?
            }
            Backend::Sqlite { reader, .. } => {
                bind_all(sqlx::query_as(AssertSqlSafe(sql.text)), sql.params)
                    .fetch_all(reader)
                    .await
                    .map_err(|e| self.outages.classify(e))?
            }
        };
        Ok(rows.into_iter().next().map(ViewerRow::into_parts))
    }

    /// Applies `changes` when `precondition` holds, recording what changed. A change that
    /// changes nothing writes nothing (and keeps the version).
    ///
    /// `current` is the employee as read already (with the request's credential check, see
    /// [`Db::employee_seen_by`]; `None`: absent). The write is conditional on its version
    /// (`version = $17`): the entry is recorded, and the row changed, only if nobody changed it
    /// since. When someone did, the employee is read again and the change reapplied to it:
    /// PostgreSQL outside a transaction, so the row and the employee counters are locked for
    /// one statement only; SQLite in the write transaction, where it cannot fail again.
    pub async fn update_employee(
        &self,
        emp_id: EmpId,
        current: Option<Employee>,
        changes: &EmployeeChanges,
        precondition: &Precondition,
        ctx: &AuditContext,
    ) -> Result<Write<Employee>, Error> {
        let (changes, precondition, ctx) = (changes.clone(), precondition.clone(), ctx.clone());
        let text = self.per_backend(
            format!(
                "WITH u AS (UPDATE employees SET emp_name = $18, city = $19, country = $20, \
                   emp_dob = $21, city_folded = $22, country_folded = $23, \
                   version = nextval('audit_pending_id_seq') \
                   WHERE emp_id = $16 AND version = $17 RETURNING version), \
                 p AS (INSERT INTO audit_pending (id, {PENDING_COLUMNS}) \
                   SELECT u.version, {PENDING_PARAMS} FROM u) \
                 SELECT version FROM u"
            ),
            format!(
                "INSERT INTO audit_pending ({PENDING_COLUMNS}) SELECT {PENDING_PARAMS} \
                   WHERE EXISTS ({STILL_SEEN}); \
                 UPDATE employees SET emp_name = $18, city = $19, country = $20, emp_dob = $21, \
                   city_folded = $22, country_folded = $23, version = last_insert_rowid() \
                 WHERE emp_id = $16 AND version = $17 RETURNING version"
            ),
        );
        // One attempt: `Err` when the version read is no longer the row's.
        macro_rules! attempt {
            ($read:expr, $write:expr, $seen:expr) => {{
                let old = starting_point!($read, emp_id, $seen, precondition);
                let Some((mut new, entry)) = apply(&old, &changes) else {
                    return Ok(Write::Done(old));
                };
                let query = sqlx::query_scalar(AssertSqlSafe(text.clone()));
                let written: Vec<i64> = bind_pending!(query, &ctx, entry, unix_millis())
                    .bind(old.emp_id)
                    .bind(old.version)
                    .bind(new.emp_name.as_str())
                    .bind(new.city.as_str())
                    .bind(new.country.as_str())
                    .bind(new.emp_dob)
                    .bind(fold(&new.city))
                    .bind(fold(&new.country))
                    .fetch_all($write)
                    .await?;
                match written.first() {
                    Some(version) => {
                        new.version = *version;
                        Ok(Write::Done(new))
                    }
                    None => Err(()),
                }
            }};
        }
        conditionally!(self, Write<Employee>, attempt, current)
    }

    /// Deletes an employee when `precondition` holds: it leaves every read and moves to the
    /// archive of deleted employees, recorded. Conditional on the version read, as
    /// [`Db::update_employee`].
    pub async fn delete_employee(
        &self,
        emp_id: EmpId,
        current: Option<Employee>,
        precondition: &Precondition,
        ctx: &AuditContext,
    ) -> Result<Write<()>, Error> {
        let (precondition, ctx) = (precondition.clone(), ctx.clone());
        let text = self.per_backend(
            format!(
                "WITH d AS (DELETE FROM employees WHERE emp_id = $16 AND version = $17 \
                   RETURNING {ARCHIVED_COLUMNS}, nextval('audit_pending_id_seq') AS entry), \
                 p AS (INSERT INTO audit_pending (id, {PENDING_COLUMNS}) \
                   SELECT d.entry, {PENDING_PARAMS} FROM d), \
                 a AS (INSERT INTO deleted_employees ({DELETED_COLUMNS}) \
                   SELECT {ARCHIVED_COLUMNS}, $18, $19, $20, d.entry FROM d) \
                 SELECT entry FROM d"
            ),
            format!(
                "INSERT INTO audit_pending ({PENDING_COLUMNS}) SELECT {PENDING_PARAMS} \
                   WHERE EXISTS ({STILL_SEEN}); \
                 INSERT INTO deleted_employees ({DELETED_COLUMNS}) \
                   SELECT {ARCHIVED_COLUMNS}, $18, $19, $20, last_insert_rowid() FROM employees \
                   WHERE emp_id = $16 AND version = $17; \
                 DELETE FROM employees WHERE emp_id = $16 AND version = $17 RETURNING version"
            ),
        );
        macro_rules! attempt {
            ($read:expr, $write:expr, $seen:expr) => {{
                let old = starting_point!($read, emp_id, $seen, precondition);
                let query = sqlx::query_scalar(AssertSqlSafe(text.clone()));
                let written: Vec<i64> = bind_pending!(query, &ctx, deletion(&old), unix_millis())
                    .bind(old.emp_id)
                    .bind(old.version)
                    .bind(unix_now())
                    .bind(ctx.actor.as_str())
                    .bind(ctx.actor_id)
                    .fetch_all($write)
                    .await?;
                if written.is_empty() {
                    Err(())
                } else {
                    Ok(Write::Done(()))
                }
            }};
        }
        conditionally!(self, Write<()>, attempt, current)
    }

    /// Archived (deleted) employees after `after` (`emp_id`, deletion entry), in that order.
    pub async fn deleted_page(
        &self,
        after: Option<(i64, i64)>,
        limit: u32,
    ) -> Result<Vec<DeletedEmployee>, Error> {
        let (emp_id, seq) = after.unwrap_or((0, 0));
        let text = format!(
            "SELECT {DELETED_COLUMNS} FROM deleted_employees \
             WHERE (emp_id, deleted_seq) > ($1, $2) ORDER BY emp_id, deleted_seq LIMIT {}",
            limit.clamp(1, 1001)
        );
        let rows: Vec<DeletedRow> = on_pool!(self, read, |pool| {
            sqlx::query_as(AssertSqlSafe(text.clone()))
                .bind(emp_id)
                .bind(seq)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(DeletedEmployee::from).collect())
    }

    /// Brings back the most recently deleted record of `emp_id`: [`Error::NotFound`] when the
    /// archive has none, [`Error::Conflict`] when the `emp_id` was taken meanwhile.
    pub async fn restore_employee(
        &self,
        emp_id: EmpId,
        ctx: &AuditContext,
    ) -> Result<Employee, Error> {
        let select = format!(
            "SELECT {DELETED_COLUMNS} FROM deleted_employees WHERE emp_id = $1 \
             ORDER BY deleted_seq DESC LIMIT 1{}",
            self.row_lock()
        );
        let restored = on_pool!(self, write, |pool| {
            async {
                let mut tx = pool.begin_write().await?;
                let row: Option<DeletedRow> = sqlx::query_as(AssertSqlSafe(select.clone()))
                    .bind(emp_id.get())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(mut e) = row.map(|r| DeletedEmployee::from(r).employee) else {
                    return Ok(None);
                };
                let entry = NewEntry::new(Action::EmployeeRestore, e.emp_id)
                    .record(e.id)
                    .change("emp_name", Value::Null, json!(e.emp_name))
                    .change("city", Value::Null, json!(e.city))
                    .change("country", Value::Null, json!(e.country))
                    .change("emp_dob", Value::Null, json!(e.emp_dob.to_string()));
                e.version = Append::append(&mut *tx, ctx, vec![entry], unix_millis()).await?[0];
                sqlx::query("DELETE FROM deleted_employees WHERE id = $1")
                    .bind(e.id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO employees ({INSERT_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                )))
                .bind(e.emp_id)
                .bind(e.id)
                .bind(e.emp_name.as_str())
                .bind(e.city.as_str())
                .bind(e.country.as_str())
                .bind(e.emp_dob)
                .bind(fold(&e.city))
                .bind(fold(&e.country))
                .bind(e.version)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok::<Option<Employee>, sqlx::Error>(Some(e))
            }
            .await
        })?;
        restored.ok_or(Error::NotFound)
    }

    /// Erases every archived record of `emp_id` (GDPR art. 17): the archive rows, and the
    /// personal values of every audit entry about those records; records the erasure (without
    /// them). Returns how many records were erased ([`Error::NotFound`] when none).
    pub async fn erase_deleted(&self, emp_id: EmpId, ctx: &AuditContext) -> Result<u64, Error> {
        let erased = self
            .erase_archived("WHERE emp_id = $1", emp_id.get(), ctx)
            .await?;
        if erased == 0 {
            return Err(Error::NotFound);
        }
        Ok(erased)
    }

    /// Erases the archived records deleted before `before` (Unix seconds), as
    /// [`Db::erase_deleted`] does; returns how many.
    pub async fn purge_deleted(&self, before: i64, ctx: &AuditContext) -> Result<u64, Error> {
        self.erase_archived("WHERE deleted_at < $1", before, ctx)
            .await
    }

    async fn erase_archived(
        &self,
        condition: &str,
        value: i64,
        ctx: &AuditContext,
    ) -> Result<u64, Error> {
        let select = format!(
            "SELECT id, emp_id FROM deleted_employees {condition}{}",
            self.row_lock()
        );
        let delete = format!("DELETE FROM deleted_employees {condition}");
        on_pool!(self, write, |pool| {
            async {
                let mut tx = pool.begin_write().await?;
                let records: Vec<(Uuid, i64)> = sqlx::query_as(AssertSqlSafe(select.clone()))
                    .bind(value)
                    .fetch_all(&mut *tx)
                    .await?;
                if records.is_empty() {
                    return Ok(0);
                }
                sqlx::query(AssertSqlSafe(delete.clone()))
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
                let now = unix_now();
                let ids: Vec<Uuid> = records.iter().map(|(id, _)| *id).collect();
                erase_personal!(tx, &ids, now);
                let entries = records
                    .iter()
                    .map(|(id, emp_id)| NewEntry::new(Action::EmployeeErase, emp_id).record(*id))
                    .collect();
                Append::append(&mut *tx, ctx, entries, unix_millis()).await?;
                tx.commit().await?;
                Ok::<u64, sqlx::Error>(records.len() as u64)
            }
            .await
        })
    }

    /// `FOR UPDATE` on PostgreSQL (the row stays as read until commit); nothing on SQLite,
    /// whose one writer connection already excludes other writers.
    fn row_lock(&self) -> &'static str {
        match &self.backend {
            Backend::Postgres { .. } => " FOR UPDATE",
            Backend::Sqlite { .. } => "",
        }
    }
}
