//! The page's hooks: the store every component reads and dispatches to, and the frame loop that feeds it.

pub mod frame_loop;
pub mod store;
