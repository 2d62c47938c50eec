//! User accounts: the caller's own ([`me`]: the account, its sessions, its password) and, for
//! administrators, everyone's ([`admin`]).

mod admin;
mod me;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me::me))
        .routes(routes!(me::sessions))
        .routes(routes!(me::end_session))
        .routes(routes!(me::change_password))
        .routes(routes!(admin::list_users))
        .routes(routes!(
            admin::get_user,
            admin::update_user,
            admin::delete_user
        ))
        .routes(routes!(admin::reset_password))
}
