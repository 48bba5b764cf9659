//! Cutting a byte stream into multipart-upload parts the way R2 requires.
//!
//! R2 accepts a multipart upload only if every part but the last has the
//! same size (at least 5 MiB) and the last is no larger than the others
//! (<https://developers.cloudflare.com/r2/objects/multipart-objects>).
//! [`EqualParts`] takes pieces of any size (the job's chunk parts) and hands
//! back parts of exactly `size` bytes, holding at most `size` plus one piece.

/// Buffers pieces and yields parts of exactly one size; the remainder is the
/// last part.
#[derive(Debug)]
pub struct EqualParts {
    size: usize,
    buf: Vec<u8>,
    emitted: usize,
}

impl EqualParts {
    /// Parts of `size` bytes (`size` is at least 1), starting with `head`.
    pub fn new(size: usize, head: Vec<u8>) -> Self {
        Self {
            size: size.max(1),
            buf: head,
            emitted: 0,
        }
    }

    /// Appends a piece; returns the parts it completed, each exactly `size` bytes.
    pub fn push(&mut self, piece: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(piece);
        self.take_full()
    }

    /// The parts still held: any full ones, then the remainder as the last
    /// part. An upload that got no data at all still gets one empty part
    /// (an upload needs at least one).
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        let mut rest = self.take_full();
        if !self.buf.is_empty() || self.emitted == 0 {
            rest.push(self.buf);
        }
        rest
    }

    fn take_full(&mut self) -> Vec<Vec<u8>> {
        let mut full = Vec::new();
        while self.buf.len() >= self.size {
            let rest = self.buf.split_off(self.size);
            full.push(std::mem::replace(&mut self.buf, rest));
        }
        self.emitted += full.len();
        full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(size: usize, head: &[u8], pieces: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut p = EqualParts::new(size, head.to_vec());
        let mut out: Vec<Vec<u8>> = pieces.iter().flat_map(|x| p.push(x)).collect();
        out.extend(p.finish());
        out
    }

    #[test]
    fn a_head_larger_than_a_part_is_cut_too() {
        assert_eq!(
            cut(2, b"abcde", &[]),
            vec![b"ab".to_vec(), b"cd".to_vec(), b"e".to_vec()]
        );
    }

    #[test]
    fn parts_are_equal_but_the_last_which_is_not_larger() {
        let parts = cut(4, b"hh", &[b"abcdefg", b"", b"x", b"0123456789"]);
        let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![4, 4, 4, 4, 4]);
        assert_eq!(parts.concat(), b"hhabcdefgx0123456789");

        let parts = cut(4, b"", &[b"abcdef"]);
        assert_eq!(parts, vec![b"abcd".to_vec(), b"ef".to_vec()]);
    }

    #[test]
    fn a_piece_larger_than_several_parts_is_cut_into_all_of_them() {
        let piece = vec![7u8; 23];
        let parts = cut(5, b"", &[&piece]);
        let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![5, 5, 5, 5, 3]);
    }

    #[test]
    fn empty_input_is_one_empty_part_and_an_exact_fit_has_no_tail() {
        assert_eq!(cut(4, b"", &[]), vec![Vec::<u8>::new()]);
        assert_eq!(cut(4, b"ab", &[b"cd"]), vec![b"abcd".to_vec()]);
    }
}
