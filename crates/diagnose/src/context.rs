//! SELinux security contexts as text: `user:role:type[:level]`, split the way sepolgen
//! splits them (`refpolicy.SecurityContext.from_string`): at `:`, the level being everything
//! after the third field (`s0-s0:c0.c1023` keeps its colons).
//!
//! Pure and total: no I/O, no policy look-ups, no panics; a string with fewer than three
//! fields is not a context (`None`).

use std::fmt;

/// A parsed security context.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecurityContext {
    pub user: String,
    pub role: String,
    /// The type (domain for processes).
    pub type_: String,
    /// The MLS/MCS level or range (`s0`, `s0:c1,c2`, `s0-s0:c0.c1023`), if present.
    pub level: Option<String>,
}

impl SecurityContext {
    /// `user:role:type[:level...]`; `None` with fewer than three `:`-separated fields.
    pub fn parse(text: &str) -> Option<SecurityContext> {
        let mut it = text.splitn(4, ':');
        let user = it.next()?;
        let role = it.next()?;
        let type_ = it.next()?;
        let level = it.next().map(str::to_owned);
        Some(SecurityContext {
            user: user.to_owned(),
            role: role.to_owned(),
            type_: type_.to_owned(),
            level,
        })
    }

    /// The sensitivity part of the level (`s0` of `s0:c1,c2`, the low level of a range).
    pub fn sensitivity(&self) -> Option<&str> {
        let level = self.level.as_deref()?;
        let low = level.split('-').next().unwrap_or(level);
        Some(low.split(':').next().unwrap_or(low))
    }

    /// The categories of the (low) level: `c1,c2` of `s0:c1,c2`, `None` for `s0`.
    pub fn categories(&self) -> Option<&str> {
        let level = self.level.as_deref()?;
        let low = level.split('-').next().unwrap_or(level);
        low.split_once(':').map(|(_, c)| c)
    }
}

impl fmt::Display for SecurityContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.user, self.role, self.type_)?;
        if let Some(level) = &self.level {
            write!(f, ":{level}")?;
        }
        Ok(())
    }
}

/// The type field of a context string, if it has one.
pub fn type_of(context: &str) -> Option<&str> {
    let mut it = context.split(':');
    it.next()?;
    it.next()?;
    it.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_sepolgen() {
        let c = SecurityContext::parse("system_u:system_r:container_t:s0:c1,c2").unwrap();
        assert_eq!(c.type_, "container_t");
        assert_eq!(c.level.as_deref(), Some("s0:c1,c2"));
        assert_eq!(c.sensitivity(), Some("s0"));
        assert_eq!(c.categories(), Some("c1,c2"));
        assert_eq!(c.to_string(), "system_u:system_r:container_t:s0:c1,c2");
        let r = SecurityContext::parse("u:r:t:s0-s0:c0.c1023").unwrap();
        assert_eq!(r.level.as_deref(), Some("s0-s0:c0.c1023"));
        assert_eq!(r.categories(), None);
        let plain = SecurityContext::parse("a:b:c").unwrap();
        assert_eq!(plain.level, None);
        assert_eq!(plain.sensitivity(), None);
        assert!(SecurityContext::parse("a:b").is_none());
        assert_eq!(
            type_of("a:b:my_container.process:s0"),
            Some("my_container.process")
        );
        assert_eq!(type_of("kernel"), None);
    }
}
