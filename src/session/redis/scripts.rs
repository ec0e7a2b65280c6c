//! The Lua scripts (in `lua/`), each with the shared helpers of
//! `lua/common.lua` in front. A script runs atomically in Redis: every
//! multi-key change (issue under the limits, refresh, revoke, a batch of
//! write-behind) is one script.

use redis::Script;

const COMMON: &str = include_str!("lua/common.lua");

pub struct Scripts {
    pub flush: Script,
    pub poll: Script,
    pub revoke: Script,
    pub issue: Script,
    pub token: Script,
    pub change: Script,
    pub delete: Script,
    pub delete_user: Script,
    pub sweep: Script,
}

fn with_common(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

impl Scripts {
    pub fn new() -> Scripts {
        Scripts {
            flush: with_common(include_str!("lua/flush.lua")),
            poll: with_common(include_str!("lua/poll.lua")),
            revoke: with_common(include_str!("lua/revoke.lua")),
            issue: with_common(include_str!("lua/issue.lua")),
            token: with_common(include_str!("lua/token.lua")),
            change: with_common(include_str!("lua/change.lua")),
            delete: with_common(include_str!("lua/delete.lua")),
            delete_user: with_common(include_str!("lua/delete_user.lua")),
            sweep: with_common(include_str!("lua/sweep.lua")),
        }
    }
}
