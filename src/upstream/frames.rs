//! Splits a DNS byte stream into its length-prefixed messages (RFC 1035 section 4.2.2), for the
//! DoT connection's task, which reads whatever TLS hands it and may get half a frame, or ten.
//!
//! The buffer is read into in place and frames are lent out of it, so an answer is copied once
//! (into the waiter's message). It holds [`READ_BUF`] octets, or one frame's worth if a frame is
//! longer: the two-octet prefix bounds that to 65537 octets, and the buffer shrinks back once the
//! long frame is consumed. The prefix is all that is trusted here; what a frame holds is checked
//! by whoever takes it.

/// Input buffer size; a longer frame grows it for as long as it takes to read that frame.
pub(crate) const READ_BUF: usize = 16 * 1024;

/// The reading end of a length-prefixed stream.
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    /// Unparsed input: `buf[start..end]`.
    start: usize,
    end: usize,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader {
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
        }
    }
}

impl FrameReader {
    /// Octets the frame at `start` needs in all (prefix included), as far as known.
    fn needed(&self) -> usize {
        if self.end - self.start < 2 {
            return 2;
        }
        2 + u16::from_be_bytes([self.buf[self.start], self.buf[self.start + 1]]) as usize
    }

    /// Room to read into, never empty: at least what the frame being read still lacks fits
    /// (moving unparsed input to the front, or growing the buffer, when it would not).
    pub(crate) fn space(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > READ_BUF {
                self.buf.truncate(READ_BUF);
                self.buf.shrink_to_fit();
            }
        }
        let need = self.needed();
        if self.end == self.buf.len() || self.start + need > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if need > self.buf.len() {
                self.buf.resize(need, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Records that `n` octets were read into the front of [`FrameReader::space`].
    pub(crate) fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// The next complete frame's message, if it has all been read.
    pub(crate) fn next_frame(&mut self) -> Option<&[u8]> {
        let need = self.needed();
        if self.end - self.start < need {
            return None;
        }
        let frame = self.start + 2..self.start + need;
        self.start += need;
        self.buf.get(frame)
    }

    /// Octets held: the buffer's size, for the bound's checks.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }
}

/// Fuzzing entry: the stream `data`, its first octet choosing how it arrives in pieces, must come
/// out as exactly the frames it holds, with the buffer bounded and nothing panicking.
pub fn fuzz_frames(data: &[u8]) {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    // The frames a reader of the whole stream at once would see.
    let mut expected = Vec::new();
    let mut rest = stream;
    while rest.len() >= 2 {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        if rest.len() < 2 + len {
            break;
        }
        expected.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    let mut reader = FrameReader::default();
    let mut got = Vec::new();
    let mut fed = 0;
    let mut piece = 1 + step as usize * 97;
    while fed < stream.len() {
        let space = reader.space();
        assert!(!space.is_empty(), "room to read");
        let n = space.len().min(piece).min(stream.len() - fed);
        space[..n].copy_from_slice(&stream[fed..fed + n]);
        reader.filled(n);
        fed += n;
        piece = piece % 4099 + 13;
        while let Some(frame) = reader.next_frame() {
            got.push(frame.to_vec());
        }
        assert!(reader.capacity() <= READ_BUF.max(2 + u16::MAX as usize));
    }
    assert_eq!(got, expected);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize, fill: u8) -> Vec<u8> {
        let mut f = (len as u16).to_be_bytes().to_vec();
        f.extend(std::iter::repeat_n(fill, len));
        f
    }

    #[test]
    fn frames_split_across_reads_and_many_in_one_read() {
        let mut stream = Vec::new();
        for (i, len) in [12usize, 0, 300, 65535, 12, 5000].iter().enumerate() {
            stream.extend(frame(*len, i as u8));
        }
        for step in [0u8, 1, 7, 200, 255] {
            let mut data = vec![step];
            data.extend(&stream);
            fuzz_frames(&data);
        }
    }

    #[test]
    fn a_long_frame_grows_the_buffer_once_and_it_shrinks_back() {
        let mut reader = FrameReader::default();
        let long = frame(60_000, 9);
        let mut fed = 0;
        while fed < long.len() {
            let space = reader.space();
            let n = space.len().min(long.len() - fed);
            space[..n].copy_from_slice(&long[fed..fed + n]);
            reader.filled(n);
            fed += n;
        }
        assert_eq!(reader.capacity(), 60_002);
        assert_eq!(reader.next_frame().map(<[u8]>::len), Some(60_000));
        assert!(reader.next_frame().is_none());
        reader.space();
        assert_eq!(reader.capacity(), READ_BUF);
    }
}
