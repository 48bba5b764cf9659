//! Bearer tokens to owners, compared in constant time.
//!
//! The `API_TOKENS` secret holds `token=owner` pairs separated by commas.
//! Tokens are hashed at load and the presented token's hash is compared
//! against every entry with `subtle`, so neither the match position nor the
//! token length leaks through timing.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::Owner;
use crate::error::Error;

/// The configured tokens. Only their SHA-256 is kept, and `Debug` shows
/// the owners, never a token or its hash.
pub struct TokenTable {
    entries: Vec<([u8; 32], String)>,
}

impl std::fmt::Debug for TokenTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let owners: Vec<&str> = self.entries.iter().map(|(_, o)| o.as_str()).collect();
        f.debug_struct("TokenTable")
            .field("owners", &owners)
            .finish()
    }
}

impl TokenTable {
    /// Parses `token=owner[,token=owner…]`; malformed pairs are skipped.
    pub fn parse(spec: &str) -> Self {
        let entries = spec
            .split(',')
            .filter_map(|pair| {
                let (tok, owner) = pair.trim().split_once('=')?;
                let (tok, owner) = (tok.trim(), owner.trim());
                (!tok.is_empty() && !owner.is_empty())
                    .then(|| (Sha256::digest(tok.as_bytes()).into(), owner.to_owned()))
            })
            .collect();
        Self { entries }
    }

    /// Resolves an `Authorization` header to its owner.
    pub fn owner(&self, authorization: Option<&str>) -> Result<Owner, Error> {
        // The scheme is case-insensitive (RFC 9110 §11.1): `bearer x` works.
        let token = authorization
            .map(str::trim_start)
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or(Error::Unauthorized)?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found: Option<&str> = None;
        for (d, owner) in &self.entries {
            if bool::from(d.ct_eq(&digest)) {
                found = Some(owner);
            }
        }
        found
            .map(|o| Owner(o.to_owned()))
            .ok_or(Error::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_to_owners() {
        let t = TokenTable::parse("abc=alice, def=bob,bad,=x");
        assert_eq!(t.owner(Some("Bearer abc")).unwrap().0, "alice");
        assert_eq!(t.owner(Some("Bearer def")).unwrap().0, "bob");
        assert_eq!(t.owner(Some("Bearer abd")), Err(Error::Unauthorized));
        assert_eq!(t.owner(Some("abc")), Err(Error::Unauthorized));
        assert_eq!(t.owner(None), Err(Error::Unauthorized));
        assert_eq!(t.owner(Some("Bearer ")), Err(Error::Unauthorized));
        assert_eq!(t.owner(Some("bearer abc")).unwrap().0, "alice");
        assert_eq!(t.owner(Some("BEARER  def")).unwrap().0, "bob");
        assert_eq!(t.owner(Some("Basic abc")), Err(Error::Unauthorized));
    }
}
