pub mod anomaly_list;
pub mod endpoint_table;
pub mod log_list;
pub mod metrics_grid;
pub mod sql_box;
pub mod status_bar;
pub mod window_picker;
