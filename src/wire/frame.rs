//! Server-to-client WebSocket frames. Server frames are never masked, so one encoded
//! frame can be written to every client as it is.

use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame, FrameHeader};

/// Room left before a frame's payload for its header (at most 10 bytes unmasked).
pub const HEADER_ROOM: usize = 10;

/// Writes a text frame header for the payload at `buf[HEADER_ROOM..]` just before it, and
/// returns where the frame starts.
pub fn fill_text_header(buf: &mut [u8]) -> usize {
    let len = (buf.len() - HEADER_ROOM) as u64;
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Text),
        ..FrameHeader::default()
    };
    let size = header.len(len);
    let start = HEADER_ROOM - size;
    let mut slot = &mut buf[start..HEADER_ROOM];
    // Writing into a slice of exactly the header's size cannot fail.
    let _ = header.format(len, &mut slot);
    start
}

/// A complete text frame carrying `payload`.
pub fn text(payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER_ROOM + payload.len());
    buf.resize(HEADER_ROOM, 0);
    buf.extend_from_slice(payload);
    let start = fill_text_header(&mut buf);
    buf.drain(..start);
    buf
}

/// A close frame with `code` and `reason` (cut to the 123 bytes a close frame allows).
pub fn close(code: u16, reason: &str) -> Vec<u8> {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let frame = Frame::close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason[..cut].to_string().into(),
    }));
    encode(frame)
}

/// A ping frame.
pub fn ping(payload: &[u8]) -> Vec<u8> {
    encode(Frame::ping(payload.to_vec()))
}

fn encode(frame: Frame) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len());
    // Formatting into a Vec cannot fail.
    let _ = frame.format(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_frames_use_the_shortest_length_form() {
        assert_eq!(&text(b"hi")[..2], &[0x81, 2]);
        let mid = text(&[b'a'; 300]);
        assert_eq!(&mid[..4], &[0x81, 126, 1, 44]);
        let big = text(&vec![b'a'; 70_000]);
        assert_eq!(big[1], 127);
        assert_eq!(big.len(), 70_000 + 10);
    }

    #[test]
    fn close_frames_carry_code_and_reason() {
        let f = close(1013, "slow");
        assert_eq!(f[0], 0x88);
        assert_eq!(&f[2..4], &1013u16.to_be_bytes());
        assert_eq!(&f[4..], b"slow");
        assert!(close(1000, &"é".repeat(100)).len() <= 2 + 125);
    }
}
