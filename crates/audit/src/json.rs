//! The JSON shape of one AVC for `goguardctl explain --json`: one object per `AVC`/`USER_AVC`
//! decision, flat, every field present, `null` where the log said nothing.
//!
//! This is a wire format: fields may be added, never renamed or removed. This module only
//! converts values; it never serializes to a writer itself.

use serde::{Deserialize, Serialize};

use crate::avc::Avc;

/// One AVC as `goguardctl explain --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonRecord {
    pub node: Option<String>,
    /// Exactly as in the log, e.g. `"1700000000.123"`.
    pub timestamp: String,
    pub serial: u64,
    /// `"AVC"` or `"USER_AVC"`.
    #[serde(rename = "type")]
    pub record_type: String,
    /// `"denied"` or `"granted"`.
    pub decision: String,
    pub permissions: Vec<String>,
    pub comm: Option<String>,
    pub exe: Option<String>,
    pub pid: Option<u32>,
    pub scontext: Option<String>,
    pub tcontext: Option<String>,
    pub tclass: Option<String>,
    pub name: Option<String>,
    pub path: Option<String>,
    pub permissive: Option<bool>,
    pub go_related: bool,
    pub dev: Option<String>,
    pub ino: Option<String>,
    pub syscall: Option<String>,
    pub success: Option<bool>,
    pub exit: Option<i64>,
    pub uid: Option<u32>,
    pub auid: Option<u32>,
    pub cwd: Option<String>,
    pub proctitle: Option<String>,
}

impl Avc {
    /// The JSON record of this AVC; `go_related` comes from
    /// [`GoTools::is_go_related`](crate::GoTools::is_go_related). Paths that are not UTF-8
    /// are shown with U+FFFD.
    pub fn to_json_record(&self, go_related: bool) -> JsonRecord {
        let lossy = |p: &std::path::PathBuf| p.to_string_lossy().into_owned();
        JsonRecord {
            node: self.id.node.clone(),
            timestamp: self.id.timestamp.clone(),
            serial: self.id.serial,
            record_type: self.kind.as_str().to_owned(),
            decision: self.decision.as_str().to_owned(),
            permissions: self.permissions.clone(),
            comm: self.comm.clone(),
            exe: self.exe.as_ref().map(lossy),
            pid: self.pid,
            scontext: self.scontext.clone(),
            tcontext: self.tcontext.clone(),
            tclass: self.tclass.clone(),
            name: self.name.clone(),
            path: self.path.as_ref().map(lossy),
            permissive: self.permissive,
            go_related,
            dev: self.dev.clone(),
            ino: self.ino.clone(),
            syscall: self.syscall.clone(),
            success: self.success,
            exit: self.exit,
            uid: self.uid,
            auid: self.auid,
            cwd: self.cwd.as_ref().map(lossy),
            proctitle: self.proctitle.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{GoTools, parse_log};

    #[test]
    fn json_shape() {
        let log = b"node=h1 type=AVC msg=audit(1700000000.123:4567): avc:  denied  { write } for  pid=1234 comm=\"go\" name=\"go-build\" dev=\"dm-0\" ino=131 scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=unconfined_u:object_r:cache_home_t:s0 tclass=dir permissive=0\n";
        let (events, errors) = parse_log(log);
        assert!(errors.is_empty());
        let avc = &events[0].avcs()[0];
        let go = GoTools::default().is_go_related(avc, &["/nowhere"]);
        let v = serde_json::to_value(avc.to_json_record(go)).unwrap();
        assert_eq!(v["node"], "h1");
        assert_eq!(v["timestamp"], "1700000000.123");
        assert_eq!(v["serial"], 4567);
        assert_eq!(v["type"], "AVC");
        assert_eq!(v["decision"], "denied");
        assert_eq!(v["permissions"], serde_json::json!(["write"]));
        assert_eq!(v["comm"], "go");
        assert_eq!(v["pid"], 1234);
        assert_eq!(v["tclass"], "dir");
        assert_eq!(v["name"], "go-build");
        assert_eq!(v["permissive"], false);
        assert_eq!(v["go_related"], true);
        // Missing values are present and null.
        for key in ["exe", "path", "syscall", "exit", "uid", "cwd", "proctitle"] {
            assert!(v.get(key).is_some_and(|x| x.is_null()), "{key}");
        }
        let back: super::JsonRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back.serial, 4567);
    }
}
