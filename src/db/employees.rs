//! Employee records: create, read, change, delete. Lists are in [`super::list`], bulk imports
//! in [`super::import`].

use time::Date;
use uuid::Uuid;

use super::{Backend, Db, Error, on_pool};
use crate::domain::{
    employee::{EmpId, Employee, EmployeeChanges, NewEmployee, fold},
    user::User,
    username::Username,
};

const SELECT_BY_ID: &str =
    "SELECT emp_id, emp_name, city, country, emp_dob, id FROM employees WHERE emp_id = $1";

/// The viewer and the employee in one row: the per-request user check rides on the read.
const SELECT_SEEN_BY: &str = "SELECT u.id AS viewer_id, u.username AS viewer_name, \
       u.is_admin AS viewer_is_admin, e.emp_id, e.emp_name, e.city, e.country, e.emp_dob, e.id \
     FROM users u LEFT JOIN employees e ON e.emp_id = $2 WHERE u.id = $1";

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

/// A user joined with an employee that may not exist.
#[derive(sqlx::FromRow)]
struct ViewerRow {
    viewer_id: i64,
    viewer_name: String,
    viewer_is_admin: bool,
    emp_id: Option<i64>,
    emp_name: Option<String>,
    city: Option<String>,
    country: Option<String>,
    emp_dob: Option<Date>,
    id: Option<Uuid>,
}

impl ViewerRow {
    fn into_parts(self) -> (User, Option<Employee>) {
        let user = User {
            id: self.viewer_id,
            username: Username::from_db(self.viewer_name),
            is_admin: self.viewer_is_admin,
        };
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
        (user, employee)
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

    /// The user `user_id` (if it still exists) and the employee `emp_id` (if any), in one round
    /// trip: the per-request user check and the read share a query on the hottest route.
    pub async fn employee_seen_by(
        &self,
        user_id: i64,
        emp_id: EmpId,
    ) -> Result<Option<(User, Option<Employee>)>, Error> {
        let emp_id = emp_id.get();
        // fetch_all, not fetch_optional: sqlx runs fetch_optional as "Execute at most one row"
        // and then sends an extra Sync to close the portal (one more message each way per
        // request, seen with strace); the key lookup yields one row at most anyway.
        let rows: Vec<ViewerRow> = match &self.backend {
            Backend::Postgres { hot, .. } => {
                let mut lease = hot.get().await?;
                let rows = sqlx::query_as(SELECT_SEEN_BY)
                    .bind(user_id)
                    .bind(emp_id)
                    .fetch_all(lease.conn())
                    .await;
                lease.finish(rows)?
            }
            Backend::Sqlite { reader, .. } => sqlx::query_as(SELECT_SEEN_BY)
                .bind(user_id)
                .bind(emp_id)
                .fetch_all(reader)
                .await
                .map_err(|e| self.outages.classify(e))?,
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
