//! The bytes on the wire that more than one layer writes: WebSocket frames (server
//! frames are never masked, so one frame serves every viewer) and the agent protocol's
//! envelope. A leaf: it knows nothing of workers, feeds or connections.

pub mod envelope;
pub mod frame;
