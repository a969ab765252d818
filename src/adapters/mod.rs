//! Glue for frameworks that cannot take a tower `Service` as it is.
//!
//! axum (`Router::nest_service`) and poem (`Route::nest` with
//! `TowerCompatExt::compat`) mount [`DataApiService`](crate::DataApiService)
//! directly; warp needs the filter in `adapters::warp` (feature `warp`).

#[cfg(feature = "warp")]
pub mod warp;
