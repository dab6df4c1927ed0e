//! A real PostgreSQL server for tests, from the distribution's binaries
//! (Debian: `apt-get install postgresql`, found with `pg_config --bindir`
//! or as the newest `/usr/lib/postgresql/*/bin`; `XTREAM_PG_BINDIR`
//! overrides).
//!
//! One server per test binary is started on first use and killed when the
//! process exits (even by a signal: the kernel kills it with its parent
//! thread, a keeper that never ends); each test gets its own database in
//! it. A fault test that stops the server takes a private one instead
//! ([`Postgres::start_private`]).
//!
//! PostgreSQL refuses to run as root. Run as root (as in CI), the server
//! runs as the system user [`SYSTEM_USER`], created on first use, with its
//! data in a directory that user can reach: under
//! `~/.cache/xtream/pg-test` when every directory above it is open to
//! others, else under the system temporary directory (root's home is
//! usually closed).

use anyhow::{Context, bail};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The system user the server runs as when the tests run as root.
pub const SYSTEM_USER: &str = "xtream-pg";

/// The superuser every test server is created with.
const USER: &str = "xtream";
/// Its password (the server checks it: scram-sha-256 over TCP).
const PASSWORD: &str = "xtream-test-password";

/// A database of its own on a running test server. The server listens on
/// 127.0.0.1 only.
pub struct Postgres {
    /// Always `127.0.0.1`.
    pub host: String,
    /// The server's TCP port.
    pub port: u16,
    /// A superuser.
    pub user: String,
    /// The user's password.
    pub password: String,
    /// This test's database, created empty.
    pub database: String,
    server: Arc<Server>,
    /// Private servers only: stopping a shared one would fail other tests.
    private: bool,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("port", &self.port)
            .field("database", &self.database)
            .field("private", &self.private)
            .finish()
    }
}

impl Postgres {
    /// A fresh database on this test binary's shared server, which starts
    /// on the first call.
    pub async fn start() -> anyhow::Result<Postgres> {
        static SHARED: OnceLock<Result<Arc<Server>, String>> = OnceLock::new();
        let server = tokio::task::spawn_blocking(|| {
            SHARED
                .get_or_init(|| {
                    Server::start(true)
                        .map(Arc::new)
                        .map_err(|e| format!("{e:#}"))
                })
                .clone()
        })
        .await?
        .map_err(anyhow::Error::msg)?;
        Postgres::with_database(server, false).await
    }

    /// A fresh database on a server of its own, which [`Postgres::stop`]
    /// and [`Postgres::resume`] may take down and bring back. Killed on
    /// drop.
    pub async fn start_private() -> anyhow::Result<Postgres> {
        let server = tokio::task::spawn_blocking(|| Server::start(false)).await??;
        Postgres::with_database(Arc::new(server), true).await
    }

    async fn with_database(server: Arc<Server>, private: bool) -> anyhow::Result<Postgres> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let database = format!(
            "xtream_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut postgres = Postgres {
            host: "127.0.0.1".into(),
            port: server.port,
            user: USER.into(),
            password: PASSWORD.into(),
            database: "postgres".into(),
            server,
            private,
        };
        let admin = postgres.connect().await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .await
            .with_context(|| format!("creating database {database}"))?;
        postgres.database = database;
        Ok(postgres)
    }

    /// `postgres://user:password@127.0.0.1:PORT/database`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{}:{}@{}:{}/{}",
            self.user, self.password, self.host, self.port, self.database
        )
    }

    /// The same address as a key=value connection string.
    pub fn key_value(&self) -> String {
        format!(
            "host={} port={} user={} password={} dbname={}",
            self.host, self.port, self.user, self.password, self.database
        )
    }

    /// The `allowed_outbound_hosts` entry that lets a component reach this
    /// server: `postgres://127.0.0.1:PORT`.
    pub fn allowed_host(&self) -> String {
        format!("postgres://{}:{}", self.host, self.port)
    }

    /// A direct connection to this test's database, to set up or inspect
    /// what the code under test does.
    pub async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) =
            tokio_postgres::connect(&self.key_value(), tokio_postgres::NoTls)
                .await
                .with_context(|| format!("connecting to the test server: {}", self.server.log()))?;
        tokio::spawn(async move {
            // Ends when the client is dropped or the server goes away.
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Kills a private server, as an outage would (its data stays).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if !self.private {
            bail!("only a server from Postgres::start_private may be stopped");
        }
        self.server.stop();
        Ok(())
    }

    /// Starts a stopped private server again, same port and data.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        if !self.private {
            bail!("only a server from Postgres::start_private may be resumed");
        }
        let server = self.server.clone();
        tokio::task::spawn_blocking(move || server.run(false)).await?
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        self.server.log()
    }
}

/// A cluster whose data outlives the process: the dev stack's. Made on
/// first use (its superuser is `user`), then started as it is.
#[derive(Debug, Clone)]
pub struct KeptCluster {
    /// The data directory (`initdb`'s); also holds the server's sockets.
    pub data: PathBuf,
    /// The TCP port, on 127.0.0.1.
    pub port: u16,
    /// The role the platform logs in as; the superuser of a cluster made
    /// here. (A cluster made otherwise needs the role with this password.)
    pub user: String,
    /// Its password.
    pub password: String,
    /// The database, made if missing.
    pub database: String,
    /// The server's log.
    pub log: PathBuf,
}

impl Postgres {
    /// Starts the cluster `cluster` describes, making it first if its data
    /// directory holds none, and its database if missing. Unlike a test
    /// server it is durable (fsync and synchronous commits on) and stops
    /// with a fast shutdown on drop, which lets its data survive.
    pub async fn start_kept(cluster: KeptCluster) -> anyhow::Result<Postgres> {
        let settings = cluster.clone();
        let server = tokio::task::spawn_blocking(move || Server::start_kept(&settings)).await??;
        let mut postgres = Postgres {
            host: "127.0.0.1".into(),
            port: cluster.port,
            user: cluster.user,
            password: cluster.password,
            database: "postgres".into(),
            server: Arc::new(server),
            private: false,
        };
        let admin = postgres.connect().await?;
        let exists = admin
            .query_opt(
                "SELECT 1 FROM pg_database WHERE datname = $1",
                &[&cluster.database],
            )
            .await?
            .is_some();
        if !exists {
            admin
                .batch_execute(&format!("CREATE DATABASE \"{}\"", cluster.database))
                .await
                .with_context(|| format!("creating database {}", cluster.database))?;
        }
        postgres.database = cluster.database;
        Ok(postgres)
    }

    /// The server's (postmaster's) process id, while it runs; its backends
    /// are its children.
    pub fn server_pid(&self) -> Option<u32> {
        let child = self.server.child.lock().unwrap_or_else(|p| p.into_inner());
        child.as_ref().map(Child::id)
    }
}

/// One PostgreSQL cluster and its process.
struct Server {
    port: u16,
    bin: PathBuf,
    files: ClusterFiles,
    owner: Option<(u32, u32)>,
    /// Whether committed data must survive a crash. Test servers trade
    /// that for speed, and are killed at the end rather than shut down.
    durable: bool,
    child: Mutex<Option<Child>>,
}

/// Where a cluster's files are.
struct ClusterFiles {
    data: PathBuf,
    sockets: PathBuf,
    log: PathBuf,
    /// A test server's directory (`data/`, the sockets and the log),
    /// removed with it.
    _temporary: Option<tempfile::TempDir>,
}

impl ClusterFiles {
    fn in_temporary(dir: tempfile::TempDir) -> Self {
        Self {
            data: dir.path().join("data"),
            sockets: dir.path().to_owned(),
            log: dir.path().join("postgres.log"),
            _temporary: Some(dir),
        }
    }
}

/// The shared server's pid, for the exit handler.
static SHARED_PID: AtomicI32 = AtomicI32::new(0);
/// The shared server's directory, removed by the exit handler.
static SHARED_DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn stop_shared_server() {
    let pid = SHARED_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SIGQUIT: immediate shutdown, the server's backends included.
        unsafe {
            libc::kill(pid, libc::SIGQUIT);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    if let Some(dir) = SHARED_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

impl Server {
    fn start(shared: bool) -> anyhow::Result<Server> {
        let bin = bin_dir()?;
        let owner = if unsafe { libc::geteuid() } == 0 {
            Some(system_user()?)
        } else {
            None
        };
        let base = base_dir(owner.is_some());
        std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
        if shared {
            remove_abandoned_clusters(&base);
        }
        let prefix = if shared {
            format!("shared-{}-", std::process::id())
        } else {
            "private-".to_owned()
        };
        let dir = tempfile::Builder::new().prefix(&prefix).tempdir_in(&base)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
        }
        let server = Server {
            port: crate::free_port(),
            bin,
            files: ClusterFiles::in_temporary(dir),
            owner,
            durable: false,
            child: Mutex::new(None),
        };
        server.init(USER, PASSWORD)?;
        if shared {
            let _ = SHARED_DIR.set(server.files.sockets.clone());
            unsafe { libc::atexit(stop_shared_server) };
        }
        server.run(shared)?;
        Ok(server)
    }

    /// The dev stack's cluster: its data directory made reachable by the
    /// system user (when run as root) and initialised on first use.
    fn start_kept(cluster: &KeptCluster) -> anyhow::Result<Server> {
        let owner = if unsafe { libc::geteuid() } == 0 {
            Some(system_user()?)
        } else {
            None
        };
        let data = &cluster.data;
        std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(data, Some(uid), Some(gid))?;
            allow_traversal(data)?;
        }
        let server = Server {
            port: cluster.port,
            bin: bin_dir()?,
            files: ClusterFiles {
                data: data.clone(),
                sockets: data.clone(),
                log: cluster.log.clone(),
                _temporary: None,
            },
            owner,
            durable: true,
            child: Mutex::new(None),
        };
        std::fs::File::create(&server.files.log)?;
        if !data.join("PG_VERSION").exists() {
            server.init(&cluster.user, &cluster.password)?;
        }
        server.run(false)?;
        Ok(server)
    }

    fn command(&self, program: &str) -> Command {
        let mut command = crate::server_command(self.bin.join(program));
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        command.current_dir(&self.files.sockets);
        command
    }

    fn data(&self) -> PathBuf {
        self.files.data.clone()
    }

    fn log_path(&self) -> PathBuf {
        self.files.log.clone()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Makes the cluster, with `user` its superuser.
    fn init(&self, user: &str, password: &str) -> anyhow::Result<()> {
        // Outside the data directory, which initdb wants empty; readable
        // by the system user.
        let password_file = tempfile::NamedTempFile::new()?;
        std::fs::write(password_file.path(), password)?;
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(password_file.path(), Some(uid), Some(gid))?;
        }
        let mut initdb = self.command("initdb");
        initdb
            .arg("-D")
            .arg(self.data())
            .args(["-U", user, "--encoding=UTF8", "--locale=C"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", password_file.path().display()));
        if !self.durable {
            initdb.arg("--no-sync");
        }
        let output = initdb.output().context("cannot run initdb")?;
        if !output.status.success() {
            bail!(
                "initdb failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// Starts the server process and waits until it accepts connections.
    /// A shared server is spawned from a thread that lives as long as the
    /// process, with the kernel told to kill it when that thread goes.
    fn run(&self, shared: bool) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut command = self.command("postgres");
        command
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.files.sockets.display()
            ))
            .args(["-c", "max_connections=300"])
            .args(["-c", "log_min_messages=warning"]);
        if !self.durable {
            // Durability is not what a test checks; speed is what it needs.
            command
                .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off", "-c", "shared_buffers=32MB"]);
        }
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = if shared {
            unsafe {
                command.pre_exec(|| {
                    // After the uid change (which would clear it).
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("xtream-pg-keeper".into())
                .spawn(move || {
                    let _ = sender.send(command.spawn());
                    loop {
                        std::thread::park();
                    }
                })?;
            let child = receiver.recv()?.context("cannot start postgres")?;
            SHARED_PID.store(child.id() as i32, Ordering::SeqCst);
            child
        } else {
            command.spawn().context("cannot start postgres")?
        };
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .context("cannot run pg_isready")?;
            if ready.success() {
                return Ok(());
            }
            if let Some(child) = self
                .child
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("postgres exited with {status}: {}", self.log());
            }
            if Instant::now() > deadline {
                bail!(
                    "postgres did not accept connections within 60 s: {}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            if self.durable {
                // SIGINT: a fast shutdown, which ends the clients' sessions
                // and writes a checkpoint (SIGTERM would wait for clients).
                crate::stop_child(&mut child, libc::SIGINT, Duration::from_secs(30));
            } else {
                // SIGQUIT: an immediate shutdown, the backends included.
                unsafe { libc::kill(child.id() as i32, libc::SIGQUIT) };
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where the PostgreSQL programs are.
fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XTREAM_PG_BINDIR") {
        return Ok(dir.into());
    }
    let has_server = |dir: &Path| dir.join("postgres").is_file() && dir.join("initdb").is_file();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if has_server(&dir) {
            return Ok(dir);
        }
    }
    // Debian keeps each major version's server apart from the PATH.
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    match newest {
        Some((_, bin)) => Ok(bin),
        None => bail!(
            "no PostgreSQL server binaries (initdb, postgres) found: install PostgreSQL \
             (Debian: apt-get install postgresql) or set XTREAM_PG_BINDIR"
        ),
    }
}

/// Removes the shared clusters of test processes that died without their
/// exit handler (killed by a signal); their servers died with them.
fn remove_abandoned_clusters(base: &Path) {
    for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("shared-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The uid and gid of [`SYSTEM_USER`], created if missing.
fn system_user() -> anyhow::Result<(u32, u32)> {
    let lookup = || -> Option<(u32, u32)> {
        let id = |flag: &str| -> Option<u32> {
            let output = Command::new("id").args([flag, SYSTEM_USER]).output().ok()?;
            output.status.success().then_some(())?;
            String::from_utf8_lossy(&output.stdout).trim().parse().ok()
        };
        Some((id("-u")?, id("-g")?))
    };
    if let Some(ids) = lookup() {
        return Ok(ids);
    }
    // Another test binary may be creating it at the same moment; whichever
    // loses sees "already exists" and finds the user on the second lookup.
    let created = Command::new("useradd")
        .args(["--system", "--user-group", "--no-create-home"])
        .args(["--shell", "/usr/sbin/nologin", SYSTEM_USER])
        .output()
        .context("cannot run useradd")?;
    lookup().with_context(|| {
        format!(
            "cannot create the system user {SYSTEM_USER}: {}",
            String::from_utf8_lossy(&created.stderr)
        )
    })
}

/// The directory test clusters go in.
fn base_dir(for_other_user: bool) -> PathBuf {
    let preferred = crate::cache_dir().join("pg-test");
    if !for_other_user || reachable_by_others(&preferred) {
        preferred
    } else {
        std::env::temp_dir().join("xtream-pg-test")
    }
}

/// Whether every existing directory on the way to `path` lets other users
/// through.
fn reachable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.ancestors()
        .skip(1)
        .filter_map(|dir| std::fs::metadata(dir).ok())
        .all(|meta| meta.permissions().mode() & 0o001 != 0)
}

/// Gives every directory above `dir` the search bit for others where it
/// lacks it (not read), so that the system user reaches the dev cluster.
fn allow_traversal(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for ancestor in dir.ancestors().skip(1) {
        let mut permissions = std::fs::metadata(ancestor)?.permissions();
        if permissions.mode() & 0o001 == 0 {
            permissions.set_mode(permissions.mode() | 0o001);
            std::fs::set_permissions(ancestor, permissions)
                .with_context(|| format!("letting others through {}", ancestor.display()))?;
        }
    }
    Ok(())
}

/// What a test database holds of one video, table by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traces {
    /// Rows in `videos`.
    pub videos: i64,
    /// Rows in `upload_sessions`.
    pub sessions: i64,
    /// Rows in `outbox` keyed by the id, sent or not.
    pub outbox: i64,
    /// Of those, rows not sent yet.
    pub unsent: i64,
    /// Rows in `video_deletions`.
    pub deletions: i64,
}

impl Postgres {
    /// Makes everything committed so far durable. The servers run with
    /// `synchronous_commit=off` and [`Postgres::stop`] is an immediate
    /// shutdown, so commits younger than the WAL writer's delay (200 ms)
    /// would be lost by a stop; a test that stops the server right after
    /// writing calls this first, so the outage loses nothing committed.
    pub async fn checkpoint(&self) -> anyhow::Result<()> {
        self.connect().await?.batch_execute("CHECKPOINT").await?;
        Ok(())
    }

    /// Runs one of [`xtream_core::metadata`]'s statements on a connection
    /// of its own, its parameters bound as the worker binds them, and
    /// returns its rows.
    pub async fn run(
        &self,
        statement: &xtream_core::metadata::Statement,
    ) -> anyhow::Result<Vec<tokio_postgres::Row>> {
        let client = self.connect().await?;
        Ok(run_statement(&client, statement).await?)
    }

    /// The session of resumable upload `id` (JSON in `UploadSession`'s
    /// shape), if it is open.
    pub async fn session(&self, id: &str) -> anyhow::Result<Option<serde_json::Value>> {
        let statement = xtream_core::metadata::select_session(id.parse().context("an upload id")?);
        match self.run(&statement).await?.first() {
            Some(row) => Ok(Some(serde_json::from_str(row.try_get::<_, &str>(0)?)?)),
            None => Ok(None),
        }
    }

    /// The rows of each table that concern video (or upload) `id`.
    pub async fn traces(&self, id: &str) -> anyhow::Result<Traces> {
        let uuid: uuid::Uuid = id.parse().context("a video id")?;
        let client = self.connect().await?;
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM videos WHERE id = $1), \
                        (SELECT count(*) FROM upload_sessions WHERE id = $1), \
                        (SELECT count(*) FROM outbox WHERE key = $2), \
                        (SELECT count(*) FROM outbox WHERE key = $2 AND sent_at IS NULL), \
                        (SELECT count(*) FROM video_deletions WHERE video_id = $1)",
                &[&uuid, &id],
            )
            .await?;
        Ok(Traces {
            videos: row.try_get(0)?,
            sessions: row.try_get(1)?,
            outbox: row.try_get(2)?,
            unsent: row.try_get(3)?,
            deletions: row.try_get(4)?,
        })
    }

    /// How many rows each of Xtream's tables holds:
    /// `[videos, upload_sessions, outbox, video_deletions]`.
    pub async fn row_counts(&self) -> anyhow::Result<[i64; 4]> {
        let client = self.connect().await?;
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM videos), (SELECT count(*) FROM upload_sessions), \
                        (SELECT count(*) FROM outbox), (SELECT count(*) FROM video_deletions)",
                &[],
            )
            .await?;
        Ok([
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
        ])
    }
}

/// Runs `statement` on `client`, binding each [`Param`] to the type its
/// placeholder is cast to (as the worker does).
///
/// [`Param`]: xtream_core::metadata::Param
pub async fn run_statement(
    client: &tokio_postgres::Client,
    statement: &xtream_core::metadata::Statement,
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    let params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> =
        statement.params.iter().map(bound).collect();
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    client.query(statement.sql.as_str(), &refs).await
}

fn bound(
    param: &xtream_core::metadata::Param,
) -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
    use xtream_core::metadata::Param;
    match param {
        Param::Uuid(id) => Box::new(
            id.to_string()
                .parse::<uuid::Uuid>()
                .expect("a video id is a UUID"),
        ),
        Param::Text(text) => Box::new(text.clone()),
        Param::NullableText(text) => Box::new(text.clone()),
        Param::BigInt(n) => Box::new(*n),
        Param::NullableBigInt(n) => Box::new(*n),
        Param::NullableFloat(x) => Box::new(*x),
        Param::Jsonb(value) => Box::new(value.clone()),
    }
}
