//! Bearer tokens to owners, compared in constant time.
//!
//! The `API_TOKENS` secret holds `token=owner[:site|site…]` entries
//! separated by commas. The sites after `:` are the token's grant: the only
//! sites it may submit jobs for or read aggregates of; without them, or
//! with `*`, it may use every site. Tokens are hashed at load and the
//! presented token's hash is compared against every entry with `subtle`, so
//! neither the match position nor the token length leaks through timing.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::Owner;
use crate::error::Error;

/// The sites a token may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Every site (`*`, or no list).
    All,
    /// These sites only.
    Sites(Vec<String>),
}

impl Grant {
    /// Parses `site|site…`; `*` anywhere in it grants every site.
    fn parse(list: Option<&str>) -> Self {
        let Some(list) = list else {
            return Grant::All;
        };
        let sites: Vec<String> = list
            .split('|')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if sites.iter().any(|s| s == "*") {
            Grant::All
        } else {
            Grant::Sites(sites)
        }
    }

    /// Whether the grant covers `site`.
    pub fn allows(&self, site: &str) -> bool {
        match self {
            Grant::All => true,
            Grant::Sites(sites) => sites.iter().any(|s| s == site),
        }
    }

    /// The sites, or `None` for every site.
    pub fn sites(&self) -> Option<&[String]> {
        match self {
            Grant::All => None,
            Grant::Sites(sites) => Some(sites),
        }
    }

    /// `Err(Forbidden)` unless the grant covers `site`.
    pub fn check(&self, site: &str) -> Result<(), Error> {
        if self.allows(site) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "this token has no grant for site {site:?}"
            )))
        }
    }
}

/// Who is calling: the owner a token maps to, and the token's grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The tenant.
    pub owner: Owner,
    /// The sites the token may use.
    pub grant: Grant,
}

/// The configured tokens. Only their SHA-256 is kept, and `Debug` shows
/// the owners, never a token or its hash.
pub struct TokenTable {
    entries: Vec<([u8; 32], Caller)>,
}

impl std::fmt::Debug for TokenTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let owners: Vec<&str> = self
            .entries
            .iter()
            .map(|(_, c)| c.owner.0.as_str())
            .collect();
        f.debug_struct("TokenTable")
            .field("owners", &owners)
            .finish()
    }
}

impl TokenTable {
    /// Parses `token=owner[:site|site…][,…]`; malformed entries are
    /// skipped.
    pub fn parse(spec: &str) -> Self {
        let entries = spec
            .split(',')
            .filter_map(|pair| {
                let (tok, rest) = pair.trim().split_once('=')?;
                let (owner, sites) = match rest.split_once(':') {
                    Some((owner, sites)) => (owner, Some(sites)),
                    None => (rest, None),
                };
                let (tok, owner) = (tok.trim(), owner.trim());
                (!tok.is_empty() && !owner.is_empty()).then(|| {
                    let caller = Caller {
                        owner: Owner(owner.to_owned()),
                        grant: Grant::parse(sites),
                    };
                    (Sha256::digest(tok.as_bytes()).into(), caller)
                })
            })
            .collect();
        Self { entries }
    }

    /// Resolves an `Authorization` header to its owner.
    pub fn owner(&self, authorization: Option<&str>) -> Result<Owner, Error> {
        self.caller(authorization).map(|c| c.owner)
    }

    /// Resolves an `Authorization` header to its owner and grant.
    pub fn caller(&self, authorization: Option<&str>) -> Result<Caller, Error> {
        // The scheme is case-insensitive (RFC 9110 §11.1): `bearer x` works.
        let token = authorization
            .map(str::trim_start)
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or(Error::Unauthorized)?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found: Option<&Caller> = None;
        for (d, caller) in &self.entries {
            if bool::from(d.ct_eq(&digest)) {
                found = Some(caller);
            }
        }
        found.cloned().ok_or(Error::Unauthorized)
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

    #[test]
    fn a_token_may_name_the_sites_it_may_use() {
        let t = TokenTable::parse("a=alice, b=bob:north|south , c=carol:*, d=dan:north|*, e=eve:");
        let grant = |tok: &str| t.caller(Some(&format!("Bearer {tok}"))).unwrap().grant;
        assert_eq!(grant("a"), Grant::All, "no list: every site");
        let bob = t.caller(Some("Bearer b")).unwrap();
        assert_eq!(bob.owner.0, "bob");
        assert!(bob.grant.allows("north") && bob.grant.allows("south"));
        assert!(!bob.grant.allows("east") && !bob.grant.allows("nort"));
        assert_eq!(
            bob.grant.check("east"),
            Err(Error::Forbidden(
                "this token has no grant for site \"east\"".into()
            ))
        );
        assert_eq!(grant("c"), Grant::All);
        assert_eq!(grant("d"), Grant::All);
        assert!(!grant("e").allows("north"), "an empty list grants nothing");
    }
}
