//! Employee records: create, read, change, delete. Lists are in [`super::list`], bulk imports
//! in [`super::import`].

use time::Date;
use uuid::Uuid;

use sqlx::AssertSqlSafe;

use super::{
    Backend, Db, Error, on_pool,
    statement::{Param, Statement, bind_all},
    viewer::{Credential, Viewer, ViewerColumns},
};
use crate::domain::employee::{EmpId, Employee, EmployeeChanges, NewEmployee, fold};

const SELECT_BY_ID: &str =
    "SELECT emp_id, emp_name, city, country, emp_dob, id FROM employees WHERE emp_id = $1";

/// An employee row as stored.
#[derive(sqlx::FromRow)]
pub(super) struct EmployeeRow {
    emp_id: i64,
    emp_name: String,
    city: String,
    country: String,
    emp_dob: Date,
    id: Uuid,
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
                })
            }
            _ => None,
        };
        (self.viewer.into_viewer(), employee)
    }
}

impl Db {
    /// Inserts an employee ([`Error::Conflict`] when the `emp_id` is taken).
    pub async fn insert_employee(&self, new: NewEmployee) -> Result<Employee, Error> {
        let id = Uuid::new_v4();
        on_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO employees (emp_id, id, emp_name, city, country, emp_dob, city_folded, country_folded) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(new.emp_id.get())
            .bind(id)
            .bind(new.emp_name.as_str())
            .bind(new.city.as_str())
            .bind(new.country.as_str())
            .bind(new.emp_dob.get())
            .bind(fold(new.city.as_str()))
            .bind(fold(new.country.as_str()))
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        Ok(Employee::new(id, new))
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
            "SELECT v.*, e.emp_id, e.emp_name, e.city, e.country, e.emp_dob, e.id \
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

    /// Applies the changes present in `changes`, in one statement; `None` when no such employee.
    pub async fn update_employee(
        &self,
        emp_id: EmpId,
        changes: &EmployeeChanges,
    ) -> Result<Option<Employee>, Error> {
        let city = changes.city.as_ref().map(|c| c.as_str());
        let country = changes.country.as_ref().map(|c| c.as_str());
        let row: Option<EmployeeRow> = on_pool!(self, write, |pool| {
            sqlx::query_as(
                "UPDATE employees SET \
                   emp_name = COALESCE($2, emp_name), \
                   city = COALESCE($3, city), \
                   country = COALESCE($4, country), \
                   emp_dob = COALESCE($5, emp_dob), \
                   city_folded = COALESCE($6, city_folded), \
                   country_folded = COALESCE($7, country_folded) \
                 WHERE emp_id = $1 \
                 RETURNING emp_id, emp_name, city, country, emp_dob, id",
            )
            .bind(emp_id.get())
            .bind(changes.emp_name.as_ref().map(|n| n.as_str()))
            .bind(city)
            .bind(country)
            .bind(changes.emp_dob.map(|d| d.get()))
            .bind(city.map(fold))
            .bind(country.map(fold))
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(Employee::from))
    }

    /// Deletes an employee ([`Error::NotFound`] when there was none).
    pub async fn delete_employee(&self, emp_id: EmpId) -> Result<(), Error> {
        let done = on_pool!(self, write, |pool| {
            sqlx::query("DELETE FROM employees WHERE emp_id = $1")
                .bind(emp_id.get())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        match done {
            1 => Ok(()),
            _ => Err(Error::NotFound),
        }
    }
}
