//! A Redis Sentinel group on loopback for the failover test: one master,
//! one replica of it, and one sentinel (Debian's `redis-sentinel`) watching
//! the master with a short `down-after-milliseconds`, so a failover takes
//! seconds. Every node is a child [`Proc`] (killed on drop) with its files
//! in the test's [`Workdir`]; waits poll the nodes themselves (through the
//! redis crate), bounded in count and time.

use std::process::Command;
use std::time::Duration;

use super::ports::free_port;
use super::proc::{Proc, Workdir};
use super::stack::redis_command;
use super::tools::Tools;
use super::wait::poll_until;

/// Cold starts and a first sync on a loaded 2-core machine take well under this.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// The sentinel calls the master down after this long without an answer.
pub const DOWN_AFTER_MS: u64 = 400;

/// The three nodes; the master is `None` once [`SentinelGroup::kill_master`] ran.
pub struct SentinelGroup {
    master: Option<Proc>,
    _replica: Proc,
    _sentinel: Proc,
    pub master_port: u16,
    pub replica_port: u16,
    pub sentinel_port: u16,
    pub master_name: String,
}

impl SentinelGroup {
    /// Starts the master, its replica (waited until in sync) and the
    /// sentinel (waited until it knows the replica, so it can fail over).
    pub async fn start(tools: &Tools, work: &Workdir, master_name: &str) -> SentinelGroup {
        let (master_port, replica_port, sentinel_port) = (free_port(), free_port(), free_port());
        let mut master = redis_node(tools, work, "redis-master", master_port, None);
        master
            .wait_for_log("Ready to accept connections", START_TIMEOUT)
            .await;
        let mut replica = redis_node(
            tools,
            work,
            "redis-replica",
            replica_port,
            Some(master_port),
        );
        replica
            .wait_for_log(
                "MASTER <-> REPLICA sync: Finished with success",
                START_TIMEOUT,
            )
            .await;
        let conf = work.write(
            "sentinel.conf",
            &format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\n\
                 sentinel monitor {master_name} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {master_name} {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {master_name} 5000\n\
                 sentinel parallel-syncs {master_name} 1\n",
                dir = work.path().display(),
            ),
        );
        let mut command = Command::new(tools.path("redis-sentinel"));
        command.arg(&conf).current_dir(work.path());
        let mut sentinel = Proc::spawn("redis-sentinel", command, work.path().join("sentinel.log"));
        let name = master_name.to_owned();
        sentinel
            .wait_ready("the sentinel to know the replica", START_TIMEOUT, || {
                let name = name.clone();
                async move {
                    let replicas: Vec<Vec<String>> = query(
                        sentinel_port,
                        redis::cmd("SENTINEL").arg("replicas").arg(&name),
                    )
                    .await?;
                    let known = replicas.iter().any(|fields| {
                        fields
                            .windows(2)
                            .any(|kv| kv[0] == "port" && kv[1] == replica_port.to_string())
                    });
                    known
                        .then_some(())
                        .ok_or_else(|| format!("replicas: {replicas:?}"))
                }
            })
            .await;
        SentinelGroup {
            master: Some(master),
            _replica: replica,
            _sentinel: sentinel,
            master_port,
            replica_port,
            sentinel_port,
            master_name: master_name.to_owned(),
        }
    }

    /// Waits (bounded) until the replica holds everything written to the
    /// master so far (`WAIT 1`), so killing the master loses nothing.
    pub async fn replicated(&self) {
        let acked: i64 = query(
            self.master_port,
            redis::cmd("WAIT")
                .arg(1)
                .arg(START_TIMEOUT.as_millis() as u64),
        )
        .await
        .unwrap_or_else(|err| panic!("WAIT on the master: {err}"));
        assert_eq!(acked, 1, "the replica did not acknowledge the writes");
    }

    /// SIGKILL to the master (and it is reaped): no goodbye to anyone.
    pub fn kill_master(&mut self) {
        drop(self.master.take());
    }

    /// The master's port as the sentinel names it now.
    pub async fn master_by_sentinel(&self) -> Result<u16, String> {
        let (_, port): (String, u16) = query(
            self.sentinel_port,
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&self.master_name),
        )
        .await?;
        Ok(port)
    }

    /// Polls until the sentinel has promoted the replica.
    pub async fn wait_promoted(&self, timeout: Duration) {
        poll_until("the sentinel to promote the replica", timeout, || async {
            match self.master_by_sentinel().await? {
                port if port == self.replica_port => Ok(()),
                port => Err(format!("master still {port}")),
            }
        })
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    }
}

/// `redis-server` without persistence on `port`, a replica of `of` if given.
fn redis_node(tools: &Tools, work: &Workdir, name: &str, port: u16, of: Option<u16>) -> Proc {
    let mut command = redis_command(tools, work, port);
    if let Some(master) = of {
        command.args(["--replicaof", "127.0.0.1", &master.to_string()]);
    }
    Proc::spawn(name, command, work.path().join(format!("{name}.log")))
}

/// One command on a fresh connection to `127.0.0.1:port`, within a second.
pub async fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> Result<T, String> {
    let work = async {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        cmd.query_async(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(1), work).await {
        Ok(outcome) => outcome.map_err(|err| err.to_string()),
        Err(_) => Err(format!("no answer from 127.0.0.1:{port} within 1 s")),
    }
}
