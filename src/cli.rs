//! The `obgate` command line.
//!
//! Exit codes: 0 success; 2 bad usage or configuration (clap's own usage errors are 2 too);
//! 1 a runtime failure (database unreachable, broken audit chain, port in use).
//! Results go to standard output, logs and diagnostics to standard error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

use crate::admin;
use crate::audit::{chain, Actor, ActorType};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Mode, KEYS};
use crate::store::{self, Store};
use crate::App;

/// obgate: Open Banking consent and OAuth2 gateway with KYC gating.
#[derive(Debug, Parser)]
#[command(name = "obgate", version, about, long_about = None)]
pub struct Cli {
    /// TOML configuration file; `OBGATE_*` environment variables override it.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway. With no configuration: sandbox mode on 127.0.0.1:8080 with ./obgate.db,
    /// migrations applied, and a demo admin key printed at the first start.
    Serve,
    /// Apply pending database migrations and exit (safe to run from several nodes at once).
    Migrate,
    /// Print the effective configuration (secrets masked), each key with where it came from.
    #[command(after_long_help = config_keys_help())]
    Config,
    /// Manage admin API keys for the bank-facing API (/api/v0).
    #[command(subcommand)]
    AdminKey(AdminKeyCommand),
    /// Inspect the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage the JWT signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage TPP OAuth clients (the same as /api/v0/oauth-clients).
    #[command(subcommand)]
    Client(ClientCommand),
}

/// `obgate client …`
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client. Prints the client as JSON, `client_secret` included: it is shown
    /// this once.
    Create {
        /// Name shown to customers.
        #[arg(long)]
        name: String,
        /// Redirect URI (repeatable), matched exactly.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Grant type (repeatable): client_credentials (default), authorization_code,
        /// refresh_token.
        #[arg(long = "grant-type")]
        grant_types: Vec<String>,
        /// Space-separated scopes (default: accounts).
        #[arg(long)]
        scope: Option<String>,
        /// client_secret_basic (default) or client_secret_post.
        #[arg(long = "auth-method")]
        auth_method: Option<String>,
    },
    /// List active clients (JSON).
    List {
        /// Include disabled clients.
        #[arg(long)]
        all: bool,
    },
    /// Show one client (JSON).
    Show {
        /// `cl_…`
        client_id: String,
    },
    /// Disable a client: refused everywhere from its next request on (a running SQLite node
    /// that has it cached: within `gateway.cache_ttl`).
    Disable {
        /// `cl_…`
        client_id: String,
    },
    /// Issue a new secret and print it alone on standard output; the old one keeps working
    /// for `oauth.secret_rotation_grace`.
    RotateSecret {
        /// `cl_…`
        client_id: String,
    },
}

/// `obgate keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys: kid, algorithm, state (next, active, retired) and dates.
    List,
    /// Retire the active key now, promote the next one (already published in the JWKS) and
    /// generate a new next key. Tokens signed by the retired key keep verifying until they
    /// expire. Running nodes pick the change up within 30 seconds.
    Rotate,
}

/// `obgate admin-key …`
#[derive(Debug, Subcommand)]
pub enum AdminKeyCommand {
    /// Create a key and print it, alone on standard output, once: it is never shown again.
    Create {
        /// Who or what the key is for, e.g. `ops` or `onboarding-service`.
        #[arg(long)]
        name: String,
    },
    /// List keys (never the keys themselves).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id (`ak_…`); it is refused from the next request on.
    Revoke {
        /// The key id, as shown by `obgate admin-key list`.
        id: String,
    },
}

/// `obgate audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of the whole audit log: exits 0 and prints the head hash when
    /// intact, exits 1 naming the first broken row otherwise. Record the head hash elsewhere
    /// to detect a later rewrite of the whole table.
    Verify,
}

fn config_keys_help() -> String {
    let mut s = String::from("Configuration keys (TOML key / environment variable):\n");
    for k in KEYS {
        let default = k.default.unwrap_or("-");
        s.push_str(&format!(
            "  {} / {} [default: {}]\n      {}\n",
            k.toml, k.env, default, k.help
        ));
    }
    s
}

enum Failure {
    Usage(String),
    Runtime(String),
}

impl From<crate::error::ApiError> for Failure {
    fn from(e: crate::error::ApiError) -> Self {
        Failure::Runtime(e.message())
    }
}

impl From<store::StoreError> for Failure {
    fn from(e: store::StoreError) -> Self {
        Failure::Runtime(e.to_string())
    }
}

/// Parses the command line and runs it; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The configuration comes first: it says how the runtime is built (`runtime.pin_workers`).
    let config = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", e.to_string().trim_end());
            return ExitCode::from(2);
        }
    };
    let (runtime, pinning) = match crate::runtime::build(config.pin_workers) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli, config, pinning)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("{}", msg.trim_end());
            ExitCode::from(2)
        }
        Err(Failure::Runtime(msg)) => {
            eprintln!("error: {}", msg.trim_end());
            ExitCode::from(1)
        }
    }
}

async fn run(
    cli: Cli,
    config: Config,
    pinning: Option<Arc<crate::runtime::Pinning>>,
) -> Result<(), Failure> {
    crate::telemetry::init(config.log_format, &config.log_level);
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    match cli.command {
        Command::Config => {
            print!("{}", config.render_masked());
            Ok(())
        }
        Command::Serve => serve(config, pinning).await,
        Command::Migrate => {
            let store = store::connect(&config).await?;
            store.migrate().await?;
            let state = store.migration_state().await?;
            println!(
                "migrations applied: {} of {}",
                state.applied, state.expected
            );
            store.close().await;
            Ok(())
        }
        Command::AdminKey(cmd) => {
            let writes = !matches!(cmd, AdminKeyCommand::List { .. });
            let store = open_migrated(&config, writes).await?;
            let result = admin_key(cmd, store.as_ref()).await;
            store.close().await;
            result
        }
        Command::Client(cmd) => {
            let writes = !matches!(cmd, ClientCommand::List { .. } | ClientCommand::Show { .. });
            let store = open_migrated(&config, writes).await?;
            let result = client(cmd, store.clone(), &config).await;
            store.close().await;
            result
        }
        Command::Keys(cmd) => {
            let writes = !matches!(cmd, KeysCommand::List);
            let store = open_migrated(&config, writes).await?;
            let result = keys(cmd, store.clone(), &config).await;
            store.close().await;
            result
        }
        Command::Audit(AuditCommand::Verify) => {
            let store = open_migrated(&config, false).await?;
            let result = chain::verify(store.as_ref()).await;
            store.close().await;
            match result {
                Ok(v) => {
                    println!(
                        "audit chain intact: {} rows sealing {} gateway decisions, head hash {}",
                        v.rows, v.decisions, v.head_hash
                    );
                    Ok(())
                }
                Err(e) => Err(Failure::Runtime(e.to_string())),
            }
        }
    }
}

/// Opens storage for a command. A command that `writes` migrates a stale schema when
/// `database.migrate_on_start` allows; one that only reads (a list, `audit verify`) never
/// does, and refuses a stale schema: run from a newer binary during a rolling upgrade, it must
/// not change the schema under the nodes still serving.
async fn open_migrated(config: &Config, writes: bool) -> Result<Arc<dyn Store>, Failure> {
    let store = store::connect(config).await?;
    let state = store.migration_state().await?;
    if !state.is_current() {
        if writes && config.migrate_on_start {
            store.migrate().await?;
        } else {
            return Err(Failure::Runtime(format!(
                "database has {} pending migrations; run `obgate migrate` first",
                state.pending.len()
            )));
        }
    }
    Ok(store)
}

async fn keys(cmd: KeysCommand, store: Arc<dyn Store>, config: &Config) -> Result<(), Failure> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let keys = crate::oauth::keys::Keys::new(store.clone(), clock, &config.oauth);
    let fail = |e: crate::oauth::keys::KeyError| Failure::Runtime(e.to_string());
    match cmd {
        // Lists what is stored; creating or rotating keys is `serve`'s and `rotate`'s.
        KeysCommand::List => {
            println!(
                "{:<45} {:<6} {:<8} {:<26} RETIRED",
                "KID", "ALG", "STATE", "ACTIVATED"
            );
            for k in store.list_signing_keys().await? {
                let t = |t: Option<crate::clock::Timestamp>| {
                    t.map(|t| t.to_string()).unwrap_or_else(|| "-".into())
                };
                println!(
                    "{:<45} {:<6} {:<8} {:<26} {}",
                    k.kid,
                    k.alg,
                    k.state,
                    t(k.activated_at),
                    t(k.retired_at)
                );
            }
            Ok(())
        }
        KeysCommand::Rotate => {
            keys.ensure().await.map_err(fail)?;
            let actor = cli_actor();
            let before = keys.load().await.map_err(fail)?.active.kid.clone();
            keys.rotate(actor.kind, &actor.id).await.map_err(fail)?;
            let after = keys.load().await.map_err(fail)?.active.kid.clone();
            println!("rotated: {before} retired, {after} now signs");
            Ok(())
        }
    }
}

fn print_json(v: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Failure::Runtime(e.to_string()))?;
    println!("{text}");
    Ok(())
}

async fn client(cmd: ClientCommand, store: Arc<dyn Store>, config: &Config) -> Result<(), Failure> {
    use crate::oauth::clients::{ClientMetadata, ClientView, Clients};
    let clock = SystemClock;
    let hasher = crate::oauth::secrets::SecretHasher::new(Arc::new(crate::metrics::Metrics::new()));
    let registry = Clients {
        store: store.as_ref(),
        clock: &clock,
        hasher: &hasher,
        mode: config.mode,
        grace: config.oauth.secret_rotation_grace,
        cache: None,
    };
    let actor = cli_actor();
    let usage = |e: crate::error::ApiError| match e {
        crate::error::ApiError::Validation { .. } => {
            Failure::Usage(format!("error: {}", e.message()))
        }
        other => other.into(),
    };
    match cmd {
        ClientCommand::Create {
            name,
            redirect_uris,
            grant_types,
            scope,
            auth_method,
        } => {
            let meta = ClientMetadata {
                client_name: Some(name),
                redirect_uris: (!redirect_uris.is_empty()).then_some(redirect_uris),
                grant_types: (!grant_types.is_empty()).then_some(grant_types),
                scope,
                token_endpoint_auth_method: auth_method,
                jwks: None,
            };
            let (view, secret) = registry.create(meta, &actor).await.map_err(usage)?;
            let mut v = serde_json::to_value(&view).map_err(|e| Failure::Runtime(e.to_string()))?;
            if let (Some(obj), Some(secret)) = (v.as_object_mut(), secret) {
                obj.insert("client_secret".into(), secret.into());
            }
            print_json(&v)
        }
        ClientCommand::List { all } => {
            let rows = store.list_clients(None, 10_000, all).await?;
            let views: Vec<ClientView> = rows.iter().map(ClientView::of).collect();
            print_json(&views)
        }
        ClientCommand::Show { client_id } => {
            let row = registry.get(&client_id).await?;
            print_json(&ClientView::of(&row))
        }
        ClientCommand::Disable { client_id } => {
            registry.disable(&client_id, &actor).await?;
            println!("disabled {client_id}");
            Ok(())
        }
        ClientCommand::RotateSecret { client_id } => {
            let (view, secret) = registry.rotate_secret(&client_id, &actor).await?;
            eprintln!(
                "new secret for {client_id}; the previous one works until {}",
                view.previous_secret_expires_at
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "now".into())
            );
            println!("{secret}");
            Ok(())
        }
    }
}

fn cli_actor() -> Actor {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    Actor {
        kind: ActorType::Cli,
        id: user,
        interaction_id: None,
    }
}

async fn admin_key(cmd: AdminKeyCommand, store: &dyn Store) -> Result<(), Failure> {
    let clock = SystemClock;
    match cmd {
        AdminKeyCommand::Create { name } => {
            let created = admin::create_key(store, &clock, &name, &cli_actor())
                .await
                .map_err(|e| match e {
                    crate::error::ApiError::Validation { .. } => {
                        Failure::Usage(format!("error: --name: {}", e.message()))
                    }
                    other => other.into(),
                })?;
            eprintln!(
                "created admin key {} ({}); it is printed once on standard output",
                created.record.id, created.record.name
            );
            println!("{}", created.secret.expose_secret());
            Ok(())
        }
        AdminKeyCommand::List { json } => {
            let keys = store.list_admin_keys().await?;
            if json {
                let text = serde_json::to_string_pretty(&keys)
                    .map_err(|e| Failure::Runtime(e.to_string()))?;
                println!("{text}");
                return Ok(());
            }
            println!(
                "{:<20} {:<24} {:<12} {:<26} {:<26} STATUS",
                "ID", "NAME", "PREFIX", "CREATED", "LAST USED"
            );
            for k in keys {
                let status = match k.revoked_at {
                    Some(t) => format!("revoked {t}"),
                    None => "active".into(),
                };
                println!(
                    "{:<20} {:<24} {:<12} {:<26} {:<26} {status}",
                    k.id,
                    k.name,
                    k.prefix,
                    k.created_at.to_string(),
                    k.last_used_at
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "never".into()),
                );
            }
            Ok(())
        }
        AdminKeyCommand::Revoke { id } => {
            let key = admin::revoke_key(store, &clock, &id, &cli_actor()).await?;
            println!("revoked {} ({})", key.id, key.name);
            Ok(())
        }
    }
}

async fn serve(
    config: Config,
    pinning: Option<Arc<crate::runtime::Pinning>>,
) -> Result<(), Failure> {
    let listen = config.listen;
    let mode = config.mode;
    let backend = config.database_url.masked();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let app = App::build_with_clock(config, clock.clone())
        .await
        .map_err(|e| Failure::Runtime(format!("cannot open the database {backend}: {e}")))?;
    // The demo data first, then the demo key that marks it done: a first start that fails
    // (or is stopped) while seeding leaves no key, so the next start seeds again instead of
    // skipping a half-made demo. What the failed start had made stays, unused.
    if mode == Mode::Sandbox && app.state().store.list_admin_keys().await?.is_empty() {
        let demo = crate::demo::seed(app.state()).await?;
        if let Some(created) =
            admin::ensure_demo_key(app.state().store.as_ref(), clock.as_ref()).await?
        {
            eprintln!(
                "\n  obgate sandbox: created the demo admin key (shown once; `obgate admin-key create` makes more):\n\n    {}\n\n  Use it as `Authorization: Bearer <key>` on /api/v0/*.\n",
                created.secret.expose_secret()
            );
            eprintln!(
                "{}",
                crate::demo::walkthrough(
                    &demo,
                    created.secret.expose_secret(),
                    app.state().config.public_base()
                )
            );
        }
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure::Runtime(format!("cannot listen on {listen}: {e}")))?;
    if let Some(p) = pinning {
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        tracing::info!("{}", p.describe(workers));
    }
    tracing::info!(
        %listen,
        %mode,
        database = %backend,
        public_url = %app.state().config.public_base(),
        "obgate listening; docs at /docs"
    );
    app.serve(listener, crate::http::shutdown_signal())
        .await
        .map_err(|e| Failure::Runtime(format!("server failed: {e}")))?;
    tracing::info!("stopped");
    Ok(())
}
