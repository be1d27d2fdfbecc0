pub mod log_list;
pub mod metrics_grid;
pub mod sql_box;
pub mod status_bar;
