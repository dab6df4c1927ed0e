//! Running components: the Wasmtime engine, the linker with everything a
//! Spin HTTP component imports, and one fresh instance per request.

use crate::compile_cache::CompileCache;
use crate::key_value::{self, KeyValueState, KeyValueStores};
use crate::manifest::ComponentDecl;
use crate::outbound::{OutboundHooks, OutboundPolicy};
use crate::outbound_pool::OutboundPool;
use crate::postgres::{self, PgPools, PostgresState};
use crate::variables::{self, ComponentVariables};
use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Largest linear memory one wasm memory may grow to. Our components stream
/// request and response bodies, so they need a few MiB; 256 MiB leaves room
/// for a component that buffers a catalog or a small upload.
pub const MAX_MEMORY_BYTES: usize = 256 << 20;

/// Most component instances (hence concurrent requests) alive at once,
/// unless `SPIN_WASMTIME_INSTANCE_COUNT` says otherwise: Spin's default and
/// Spin's variable. One request past it is a 500, as in Spin.
pub const MAX_CONCURRENT_INSTANCES: u32 = 1000;

/// The instance limit in force: [`MAX_CONCURRENT_INSTANCES`], or
/// `SPIN_WASMTIME_INSTANCE_COUNT` when it is a whole number, as Spin reads
/// it (an operator expecting 1000 clients at once sets more, since an
/// instance lives on for a moment after its response is sent).
pub fn max_concurrent_instances() -> u32 {
    std::env::var("SPIN_WASMTIME_INSTANCE_COUNT")
        .ok()
        .and_then(|count| count.parse().ok())
        .unwrap_or(MAX_CONCURRENT_INSTANCES)
}

/// A Rust component built for `wasm32-wasip2` is several core instances (the
/// program, the WASI preview 1 adapter and wit-component's shim modules) but
/// usually one or two memories; the pool is budgeted for that shape. A
/// component needing more only lowers the number that fit at once.
const CORE_INSTANCES_PER_COMPONENT: u32 = 4;
const MEMORIES_PER_COMPONENT: u32 = 2;

/// The process-wide engine. Every host started in a process (integration
/// tests start many) shares it, so the pool is reserved once; the lock makes
/// concurrent first starts wait for one engine instead of reserving two.
pub(crate) fn engine() -> Result<Engine> {
    static ENGINE: Mutex<Option<Engine>> = Mutex::new(None);
    let mut slot = ENGINE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(engine) = &*slot {
        return Ok(engine.clone());
    }
    let engine = new_engine()?;
    *slot = Some(engine.clone());
    Ok(engine)
}

/// Settings shared by the pooling and the on-demand engine.
///
/// `memory_reservation` is the virtual address space set aside per linear
/// memory. Wasmtime's default is 4 GiB plus guard, which lets it drop bounds
/// checks but makes a pool of thousands of memories reserve terabytes of
/// address space; some sandboxes and `ulimit -v` settings refuse that. We
/// reserve only `MAX_MEMORY_BYTES` per memory (explicit bounds checks, a
/// small cost for I/O-bound handlers): the pool then reserves roughly
/// 2000 x (256 MiB + 32 MiB guard) ~ 560 GiB of *address space*, none of it
/// committed until an instance touches it, and released pages are returned
/// to the OS when an instance ends, so RSS follows actual use.
fn base_config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.memory_reservation(MAX_MEMORY_BYTES as u64);
    // `XTREAM_PERFMAP=1`: name the compiled components' functions in
    // /tmp/perf-<pid>.map, so `perf record -p <host pid>` shows where a
    // request's time goes inside the guest, not just "JIT code".
    if std::env::var_os("XTREAM_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}

/// Up to this much of a slot's touched memory is zeroed in place when its
/// instance ends; the rest goes back to the OS.
const RESET_IN_PLACE_BYTES: usize = 1 << 20;

fn new_engine() -> Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    let instances = max_concurrent_instances();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .total_memories(instances.saturating_mul(MEMORIES_PER_COMPONENT))
        .total_tables(instances.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .total_stacks(instances)
        .max_memory_size(MAX_MEMORY_BYTES);
    // Reset a finished instance's memory by rewriting the pages it touched
    // (found with Linux's PAGEMAP_SCAN, kernel 6.7+; skipped elsewhere)
    // instead of unmapping them: unmapping cost a TLB shootdown across cores
    // and a page fault per page on the slot's next use, and was most of the
    // host's time on `/health`. Measured: 9.1k -> 16.4k req/s at 100 VUs,
    // same peak RSS.
    pool.pagemap_scan(wasmtime::Enabled::Auto)
        .linear_memory_keep_resident(RESET_IN_PLACE_BYTES)
        .table_keep_resident(RESET_IN_PLACE_BYTES / 16);
    let mut config = base_config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    match Engine::new(&config) {
        Ok(engine) => {
            tracing::debug!("using the pooling instance allocator");
            return Ok(engine);
        }
        Err(e) => tracing::warn!(
            "pooling allocator unavailable ({e:#}); falling back to on-demand allocation"
        ),
    }
    Engine::new(&base_config())
        .map_err(anyhow::Error::from)
        .context("cannot create the wasmtime engine")
}

/// Per-request store data.
pub(crate) struct StoreState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: OutboundHooks,
    variables: ComponentVariables,
    postgres: PostgresState,
    key_value: KeyValueState,
    limits: StoreLimits,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// The imports this host provides: WASI 0.2 (CLI, clocks, random, I/O,
/// filesystem, sockets), `wasi:http`, `fermyon:spin/variables`,
/// `fermyon:spin/key-value` and `spin:postgres/postgres@4.0.0`. Versions
/// are matched semver-compatibly, so components built against any 0.2.x
/// WASI link.
fn linker(engine: &Engine) -> Result<Linker<StoreState>> {
    let mut linker = Linker::<StoreState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    variables::add_to_linker(&mut linker, |state| &mut state.variables)?;
    postgres::add_to_linker(&mut linker, |state| &mut state.postgres)?;
    key_value::add_to_linker(&mut linker, |state| &mut state.key_value)?;
    Ok(linker)
}

/// A component ready to serve: pre-instantiated once, instantiated per
/// request.
pub(crate) struct AppComponent {
    id: Arc<str>,
    pre: ProxyPre<StoreState>,
    variables: Arc<HashMap<String, String>>,
    /// Shared by every component: their requests go to the same origins.
    pool: OutboundPool,
    /// This component's PostgreSQL pools: its connections outlive its
    /// instances but, as in Spin, are never lent to another component.
    pg_pools: PgPools,
    policy: Arc<OutboundPolicy>,
    /// The app's key-value stores, and which of them this component lists.
    key_value_stores: KeyValueStores,
    allowed_stores: Arc<HashSet<String>>,
}

/// What a component needs besides its code, already rendered.
pub(crate) struct ComponentSettings {
    pub(crate) decl: ComponentDecl,
    pub(crate) variables: HashMap<String, String>,
    pub(crate) policy: OutboundPolicy,
}

/// Compiles (or loads from `cache`) every component, each distinct `.wasm`
/// once and in parallel, then links and pre-instantiates them.
pub(crate) async fn load_components(
    engine: &Engine,
    cache: &CompileCache,
    settings: Vec<ComponentSettings>,
    pool: OutboundPool,
    key_value_stores: KeyValueStores,
) -> Result<HashMap<String, Arc<AppComponent>>> {
    let mut compiling: HashMap<PathBuf, tokio::task::JoinHandle<Result<Component>>> =
        HashMap::new();
    for s in &settings {
        let path = s.decl.source.clone();
        compiling.entry(path.clone()).or_insert_with(|| {
            let (engine, cache) = (engine.clone(), cache.clone());
            tokio::task::spawn_blocking(move || cache.load(&engine, &path))
        });
    }
    let mut compiled = HashMap::new();
    for (path, task) in compiling {
        let component = task.await.context("compile task failed")??;
        compiled.insert(path, component);
    }

    let linker = linker(engine)?;
    let mut components = HashMap::new();
    for s in settings {
        let id = s.decl.id.clone();
        let component = &compiled[&s.decl.source];
        log_imports(&id, engine, component);
        let pre = linker
            .instantiate_pre(component)
            .and_then(ProxyPre::new)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "component `{id}` ({}) cannot run in this host",
                    s.decl.source.display()
                )
            })?;
        let app_component = AppComponent {
            id: id.as_str().into(),
            pre,
            variables: Arc::new(s.variables),
            policy: Arc::new(s.policy),
            pool: pool.clone(),
            pg_pools: PgPools::new(),
            key_value_stores: key_value_stores.clone(),
            allowed_stores: Arc::new(s.decl.key_value_stores.iter().cloned().collect()),
        };
        components.insert(id, Arc::new(app_component));
    }
    Ok(components)
}

fn log_imports(id: &str, engine: &Engine, component: &Component) {
    if tracing::enabled!(tracing::Level::DEBUG) {
        let ty = component.component_type();
        let imports: Vec<&str> = ty.imports(engine).map(|(name, _)| name).collect();
        tracing::debug!(component = id, ?imports, "component imports");
    }
}

impl AppComponent {
    /// Runs `request` through a fresh instance of this component and returns
    /// its response as soon as the component sets it; the body keeps
    /// streaming from the instance, which lives on in its own task until the
    /// handler returns.
    pub(crate) async fn handle<B>(
        &self,
        request: hyper::Request<B>,
    ) -> Result<hyper::Response<HyperOutgoingBody>>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let state = StoreState {
            wasi: WasiCtx::builder().inherit_stdout().inherit_stderr().build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundHooks {
                component: self.id.clone(),
                policy: self.policy.clone(),
                pool: self.pool.clone(),
            },
            variables: ComponentVariables(self.variables.clone()),
            postgres: PostgresState::new(
                self.id.clone(),
                self.policy.clone(),
                self.pg_pools.clone(),
            ),
            key_value: KeyValueState::new(
                self.key_value_stores.clone(),
                self.allowed_stores.clone(),
            ),
            limits: StoreLimitsBuilder::new()
                .memory_size(MAX_MEMORY_BYTES)
                .build(),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.limits);

        let (sender, receiver) = tokio::sync::oneshot::channel();
        let request = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)?;
        let outparam = store.data_mut().http().new_response_outparam(sender)?;

        let pre = self.pre.clone();
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, outparam)
                .await
        });

        match receiver.await {
            Ok(Ok(response)) => {
                // The handler may still be streaming the body; report a
                // failure after the response started, which the client only
                // sees as a cut-off body.
                let id = self.id.clone();
                tokio::spawn(async move {
                    match task.await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::error!(component = %id, "component failed after responding: {e:?}")
                        }
                        Err(e) => {
                            tracing::error!(component = %id, "component task failed after responding: {e}")
                        }
                    }
                });
                Ok(response)
            }
            Ok(Err(code)) => bail!("component responded with error {code:?}"),
            // The outparam was dropped unset: the handler returned, trapped
            // or panicked; its task says which.
            Err(_) => match task.await {
                Ok(Ok(())) => bail!("component returned without setting a response"),
                Ok(Err(e)) => Err(anyhow::Error::from(e)),
                Err(e) => Err(anyhow!("component task failed: {e}")),
            },
        }
    }
}
