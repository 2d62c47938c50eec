//! Employee records: any user reads, administrators write. [`crud`] holds one record's
//! operations, [`list`] the list, [`transfer`] bulk import and export.

mod archive;
mod crud;
mod list;
mod transfer;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(crud::create_employee, list::list_employees))
        .routes(routes!(
            crud::get_employee,
            crud::update_employee,
            crud::delete_employee
        ))
        .routes(routes!(transfer::export_employees))
        .routes(routes!(transfer::import_employees))
        .routes(routes!(archive::deleted_employees))
        .routes(routes!(archive::restore_employee))
        .routes(routes!(archive::erase_employee))
        .routes(routes!(archive::employee_history))
}
