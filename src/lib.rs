//! workerhub: run AI coding CLIs and other programs as managed workers, and stream
//! what they print to browsers and WebSocket clients.
