// Package platform is Plugboard's composition root: it turns a
// config.Config into running parts (Postgres through gorm, Redis, the asynq
// client, worker and scheduler, the services of marketplace and webhooks,
// the HTTP server), built in one pass from constructors, and owns start-up
// and graceful shutdown. It imports every room; only cmd/plugboard, the
// benchmark and tests (through apptest) import it. The shared kernel it and
// every other package build on is app/ (fault, page, secret, testenv).
package platform

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	gormlogger "gorm.io/gorm/logger"

	"github.com/plugboard/plugboard/app/secret"
	"github.com/plugboard/plugboard/config"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/migrations"
	"github.com/plugboard/plugboard/web"
	"github.com/plugboard/plugboard/webhooks"
)

// Version is set at build time with -ldflags "-X github.com/plugboard/plugboard/cmd/platform.Version=…".
var Version = "dev"

// Roles say which parts of the platform a process runs.
type Roles struct {
	HTTP      bool // the API, OAuth endpoints and UI
	Worker    bool // the asynq server processing tasks
	Scheduler bool // the asynq scheduler enqueuing periodic jobs
}

// AllRoles is what `plugboard serve` runs.
var AllRoles = Roles{HTTP: true, Worker: true, Scheduler: true}

// App is a built platform, ready to Run.
type App struct {
	Config config.Config
	Log    *slog.Logger
	Roles  Roles

	DB       *gorm.DB
	SQL      *sql.DB
	Redis    redis.UniversalClient
	Queue    *asynq.Client
	Registry *prometheus.Registry
	Web      *web.Server

	Marketplace *marketplace.Services
	Dispatcher  *webhooks.Dispatcher // nil unless the process is a worker

	worker    *asynq.Server
	mux       *asynq.ServeMux
	scheduler *asynq.Scheduler
	listener  net.Listener
	ready     chan struct{}
	closeOnce sync.Once

	redisWatch *redisWatch // says when Redis goes and comes back; started by Run
	listeners  *webhooks.Listeners

	limiterRedis *redis.Client // the HTTP rate limiter's, with short timeouts
}

// New builds every part the roles need; nothing runs until Run. It waits
// up to PLUGBOARD_DATABASE_WAIT for PostgreSQL to answer. opts change its
// timings (tests shorten them).
func New(ctx context.Context, cfg config.Config, log *slog.Logger, roles Roles, opts ...Option) (*App, error) {
	o := newOptions(opts)
	a := &App{Config: cfg, Log: log, Roles: roles, ready: make(chan struct{})}
	tuneGC(log)

	// =========================================================================
	// Secrets

	if err := a.Config.EnsureSecretKey(); err != nil {
		return nil, err
	}

	// =========================================================================
	// Postgres

	if err := waitForPostgres(ctx, cfg.DatabaseURL, cfg.DatabaseWait, o.dbRetry, log); err != nil {
		return nil, err
	}
	if cfg.AutoMigrate {
		created, err := migrations.EnsureDatabase(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("preparing database: %w", err)
		}
		if created {
			log.Info(fmt.Sprintf("created database %s (PLUGBOARD_DATABASE_URL named a database that did not exist)", databaseName(cfg.DatabaseURL)))
		}
	}
	db, err := gorm.Open(postgres.Open(cfg.DatabaseURL), &gorm.Config{
		Logger:                 gormlogger.Discard,
		SkipDefaultTransaction: true,
		TranslateError:         false,
		NowFunc:                func() time.Time { return time.Now().UTC() },
	})
	if err != nil {
		return nil, fmt.Errorf("opening database %s: %w", config.MaskURL(cfg.DatabaseURL), err)
	}
	a.DB = db
	if a.SQL, err = db.DB(); err != nil {
		return nil, fmt.Errorf("opening database: %w", err)
	}
	a.SQL.SetMaxOpenConns(cfg.DatabaseMaxConns)
	a.SQL.SetMaxIdleConns(cfg.DatabaseMaxConns)
	a.SQL.SetConnMaxLifetime(30 * time.Minute)
	a.SQL.SetConnMaxIdleTime(5 * time.Minute)
	if cfg.AutoMigrate {
		n, err := migrations.Up(ctx, a.SQL)
		if err != nil {
			a.Close()
			return nil, err
		}
		if n > 0 {
			log.Info("applied migrations", "count", n)
		}
	}
	checkPostgresSettings(ctx, a.SQL, cfg, log)
	if err := marketplace.CheckSecretKey(ctx, db, cfg.SecretKey.Reveal()); err != nil {
		a.Close()
		return nil, err
	}

	// =========================================================================
	// Redis and asynq

	ropt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("PLUGBOARD_REDIS_URL: %w", err)
	}
	a.Redis = redis.NewClient(ropt)
	// While Redis is down, one watcher says so; go-redis, asynq and the
	// webhooks code, which would each log every failed command, are quiet
	// about connection errors (see redisWatch).
	quietRedisLibrary(log)
	a.redisWatch = newRedisWatch(func(ctx context.Context) error { return a.Redis.Ping(ctx).Err() },
		log, config.MaskURL(cfg.RedisURL), o.redisCheck, o.redisRemind)
	quiet := slog.New(quietRedis{log.Handler(), a.redisWatch})
	a.Queue = asynq.NewClientFromRedisClient(a.Redis)
	a.mux = asynq.NewServeMux()
	if roles.Worker {
		a.worker = asynq.NewServerFromRedisClient(a.Redis, asynq.Config{
			Concurrency:     cfg.WorkerConcurrency,
			ShutdownTimeout: cfg.ShutdownTimeout,
			Logger:          asynqLogger{quiet.With("component", "worker")},
			LogLevel:        asynq.WarnLevel,
			Queues:          map[string]int{webhooks.QueueCritical: 6, webhooks.QueueWebhooks: 5, webhooks.QueueDefault: 3, webhooks.QueueLow: 1},
			// Retries are scheduled tasks: move them to the queue every second.
			DelayedTaskCheckInterval: time.Second,
			// An idle worker looks for work every 20 ms (asynq's default, 1 s,
			// would be the latency of every webhook on a quiet queue).
			TaskCheckInterval: 20 * time.Millisecond,
			// A task fails when Postgres or Redis blips: try again soon
			// (1 s, 2 s, 4 s … at most 30 s); the data stays in Postgres.
			RetryDelayFunc: func(n int, _ error, _ *asynq.Task) time.Duration {
				return time.Duration(min(1<<min(n, 5), 30)) * time.Second
			},
		})
	}
	if roles.Scheduler {
		// The scheduler closes its connection on shutdown, so it gets its own.
		sopt, err := asynq.ParseRedisURI(cfg.RedisURL)
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("PLUGBOARD_REDIS_URL: %w", err)
		}
		a.scheduler = asynq.NewScheduler(sopt, &asynq.SchedulerOpts{
			Logger:   asynqLogger{quiet.With("component", "scheduler")},
			LogLevel: asynq.WarnLevel,
		})
	}

	// =========================================================================
	// Metrics

	a.Registry = prometheus.NewRegistry()
	a.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// =========================================================================
	// Services

	services, err := a.buildServices(quiet, o.now)
	if err != nil {
		a.Close()
		return nil, err
	}

	// =========================================================================
	// HTTP

	if roles.HTTP {
		// The rate limiter has its own client: a request waits for it, so
		// its calls give up fast (and the request goes unlimited) when Redis
		// does not answer, instead of waiting out the default timeouts.
		lopt := *ropt
		lopt.DialTimeout, lopt.ReadTimeout, lopt.WriteTimeout = 500*time.Millisecond, 250*time.Millisecond, 250*time.Millisecond
		lopt.ContextTimeoutEnabled, lopt.MaxRetries = true, -1
		a.limiterRedis = redis.NewClient(&lopt)
		a.Web = web.New(web.Options{
			Logger:    log,
			Env:       cfg.Env,
			BaseURL:   cfg.BaseURL,
			BodyLimit: cfg.BodyLimitBytes(),
			Version:   Version,
			Registry:  a.Registry,
			Checks: []web.Check{
				{Name: "postgres", Ping: a.SQL.PingContext},
				{Name: "redis", Ping: func(ctx context.Context) error { return a.Redis.Ping(ctx).Err() }},
			},
			Queues: asynqmon.New(asynqmon.Options{
				RootPath:     "/admin/queues",
				RedisConnOpt: redisConnOpt{a.Redis},
				ReadOnly:     false,
			}),
			Services:  services,
			CursorKey: secret.Derive(cfg.SecretKey.Reveal(), "cursors"),
			Limiter:   web.NewLimiter(a.limiterRedis, log.With("component", "ratelimit")),
			RateLimits: web.RateLimits{
				Window: cfg.APIRateWindow, User: cfg.APIRateLimitUser, Installation: cfg.APIRateLimitInstallation,
				Service: cfg.APIRateLimitService, Anonymous: cfg.APIRateLimitAnonymous,
				AuthWindow: cfg.AuthRateWindow, AuthAccount: cfg.AuthRateLimitAccount, AuthIP: cfg.AuthRateLimitIP, AuthClient: cfg.AuthRateLimitClient,
			},
		})
	}
	return a, nil
}

// buildServices wires the domain services on the clock now (nil: the wall
// clock). quiet is the log less Redis connection errors, for the webhooks
// code that would say one per event while Redis is down.
func (a *App) buildServices(quiet *slog.Logger, now func() time.Time) (*marketplace.Services, error) {
	commission, err := a.Config.BillingCommissionBps()
	if err != nil {
		return nil, fmt.Errorf("PLUGBOARD_BILLING_COMMISSION: %w", err)
	}
	mopts := marketplace.Options{
		SecretKey:    a.Config.SecretKey.Reveal(),
		Issuer:       a.Config.BaseURL,
		TokenTTL:     a.Config.TokenTTL,
		SessionTTL:   a.Config.SessionTTL,
		PasswordCost: a.Config.PasswordCost,
		GrantTTL:     a.Config.GrantTTL,
		RequireHTTPS: a.Config.Env == config.EnvProduction,
		Logger:       a.Log,

		PasswordConcurrency: a.Config.PasswordConcurrency,
		PasswordWait:        a.Config.PasswordWait,

		ProvisionTimeout: a.Config.ProvisionTimeout,
		Now:              now,
		CommissionBps:    &commission,
	}
	wopts := webhooks.Options{
		RetrySchedule:      a.Config.RetrySchedule(),
		Timeout:            a.Config.WebhookTimeout,
		AllowPrivate:       a.Config.WebhookAllowPrivate,
		Retention:          a.Config.WebhookRetention,
		DisableAfter:       a.Config.WebhookDisableAfter,
		DefaultRateLimit:   a.Config.WebhookRateLimit,
		DefaultMaxInFlight: a.Config.WebhookMaxInFlight,
		RelayGrace:         a.Config.RelayGrace,
		EndpointCacheTTL:   endpointCacheTTL(a.Config.WebhookEndpointCacheTTL),
		MaxDataDepth:       a.Config.EventsMaxDepth,
		Workers:            a.Config.WorkerConcurrency,
		Version:            Version,
	}

	// The marketplace's answer to "who receives this event" comes first:
	// the webhooks domain is built on it.
	directory, err := marketplace.NewWebhookDirectory(a.DB, mopts)
	if err != nil {
		return nil, err
	}
	metrics := webhooks.NewMetrics(a.Registry, a.DB, asynq.NewInspectorFromRedisClient(a.Redis))
	drains := webhooks.NewDrains(a.Redis, a.Queue, wopts, quiet.With("component", "webhooks"))
	store, err := webhooks.NewStore(a.DB, wopts)
	if err != nil {
		return nil, err
	}
	sender := webhooks.NewSender(wopts, metrics)
	endpoints := webhooks.NewEndpoints(a.DB, a.Queue, drains, directory, wopts)
	listeners := webhooks.NewListeners(a.Redis, webhooks.ListenLimits{
		PerOwner: a.Config.StreamsPerUser, PerApp: a.Config.StreamsPerApp, Process: a.Config.StreamsMax,
	}, quiet.With("component", "streams"))
	a.listeners = listeners
	outbox := webhooks.NewOutbox(drains, directory, listeners, wopts)

	// Only a worker sends: the API process builds what it reads and writes.
	if a.worker != nil {
		a.Dispatcher = webhooks.NewDispatcher(webhooks.DispatcherDeps{
			Store: store, Sender: sender, Endpoints: endpoints, Drains: drains,
			Limiter: webhooks.NewLimiter(a.Redis, wopts), Listeners: listeners, Metrics: metrics,
			Log: quiet.With("component", "dispatcher"),
		}, wopts)
		webhooks.Register(a.mux, a.Dispatcher, store, endpoints)
	}
	if a.scheduler != nil {
		if err := webhooks.Schedule(a.scheduler, a.Config.RelayInterval); err != nil {
			return nil, err
		}
	}

	market, err := marketplace.New(a.DB, marketplace.Deps{
		Outbox: outbox, Catalog: webhooks.NewCatalog(a.DB, wopts), Log: store, Endpoints: endpoints, Sender: sender, Stream: listeners,
		Caller: sender,
	}, mopts, marketplace.ReconcileOptions{Interval: a.Config.ReconcileInterval, VerifyTimeout: a.Config.InstallVerifyTimeout, Registry: a.Registry,
		ProvisionDeadline: a.Config.ProvisionDeadline})
	if err != nil {
		return nil, err
	}
	market.Reconciler.Register(a.mux)
	market.Billing.Register(a.mux)
	if a.scheduler != nil {
		if err := market.Reconciler.Schedule(a.scheduler); err != nil {
			return nil, err
		}
		if err := market.Billing.Schedule(a.scheduler); err != nil {
			return nil, err
		}
	}
	a.Marketplace = market
	return market, nil
}

// endpointCacheTTL is the configured TTL as webhooks.Options takes it:
// there zero means the default, and no cache is a negative TTL.
func endpointCacheTTL(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// Listen binds the HTTP address; Run calls it when it was not called before.
// Tests call it with ":0" in the config and read Addr.
func (a *App) Listen() error {
	if !a.Roles.HTTP || a.listener != nil {
		return nil
	}
	l, err := net.Listen("tcp", a.Config.HTTPAddr)
	if err != nil {
		return fmt.Errorf("PLUGBOARD_HTTP_ADDR: listening on %s: %w", a.Config.HTTPAddr, err)
	}
	a.listener = l
	return nil
}

// UseListener makes the HTTP server serve on l (tests pass one on port 0).
func (a *App) UseListener(l net.Listener) { a.listener = l }

// Addr is the address the HTTP server listens on, once Listen has run.
func (a *App) Addr() string {
	if a.listener == nil {
		return ""
	}
	return a.listener.Addr().String()
}

// Ready is closed once every role has started.
func (a *App) Ready() <-chan struct{} { return a.ready }

// Run starts the roles and blocks until ctx is cancelled or a part fails,
// then shuts down gracefully: HTTP stops accepting and drains, the worker
// lets in-flight tasks finish (or hands them back to the queue after
// ShutdownTimeout), the scheduler stops, connections close.
func (a *App) Run(ctx context.Context) error {
	defer a.Close()
	if err := a.Listen(); err != nil {
		return err
	}

	// The watcher pings Redis at once (Redis down at start-up is said at
	// start-up, without holding it up), then follows it until the roles
	// have stopped.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); a.redisWatch.run(watchCtx) }()
	defer func() { stopWatch(); <-watchDone }()

	errc := make(chan error, 3)

	var httpSrv *http.Server
	if a.Roles.HTTP {
		httpSrv = &http.Server{
			Handler:           a.Web,
			ReadTimeout:       a.Config.ReadTimeout,
			ReadHeaderTimeout: 10 * time.Second,
			WriteTimeout:      a.Config.WriteTimeout,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
		}
		httpSrv.RegisterOnShutdown(a.Web.CloseStreams)
		var fresh freshConns
		httpSrv.ConnState = fresh.track
		httpSrv.RegisterOnShutdown(fresh.close)
		go func() {
			a.Log.Info("http listening", "addr", a.Addr(), "url", a.Config.BaseURL)
			if err := httpSrv.Serve(a.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("http server: %w", err)
			}
		}()
	}
	if a.worker != nil {
		if err := a.worker.Start(a.mux); err != nil {
			return fmt.Errorf("starting worker: %w", err)
		}
		a.Log.Info("worker started", "concurrency", a.Config.WorkerConcurrency)
	}
	if a.scheduler != nil {
		if err := a.scheduler.Start(); err != nil {
			return fmt.Errorf("starting scheduler: %w", err)
		}
		a.Log.Info("scheduler started")
	}
	close(a.ready)

	var runErr error
	select {
	case <-ctx.Done():
		a.Log.Info("shutting down")
	case runErr = <-errc:
		a.Log.Error("shutting down after failure", "err", runErr)
	}

	sctx, cancel := context.WithTimeout(context.Background(), a.Config.ShutdownTimeout)
	defer cancel()
	if httpSrv != nil {
		if err := httpSrv.Shutdown(sctx); err != nil {
			_ = httpSrv.Close()
			runErr = errors.Join(runErr, fmt.Errorf("draining http: %w", err))
		}
	}
	if a.scheduler != nil {
		a.scheduler.Shutdown()
	}
	if a.worker != nil {
		a.worker.Shutdown()
	}
	a.Log.Info("stopped")
	return runErr
}

// Close releases connections; Run calls it on the way out.
func (a *App) Close() {
	a.closeOnce.Do(func() {
		if a.listeners != nil {
			a.listeners.Close()
		}
		if a.Queue != nil {
			_ = a.Queue.Close()
		}
		if a.Redis != nil {
			_ = a.Redis.Close()
		}
		if a.limiterRedis != nil {
			_ = a.limiterRedis.Close()
		}
		if a.SQL != nil {
			_ = a.SQL.Close()
		}
		if a.listener != nil && !a.Roles.HTTP {
			_ = a.listener.Close()
		}
	})
}

// redisConnOpt hands an existing client to code that wants a RedisConnOpt.
type redisConnOpt struct{ c redis.UniversalClient }

func (o redisConnOpt) MakeRedisClient() any { return o.c }

// databaseName is the database a postgres:// URL names.
func databaseName(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return ""
	}
	return strings.Trim(u.Path, "/")
}

// freshConns are the connections that have not yet sent a request (an HTTP
// client dials ahead when requests come at once; a balancer keeps spares).
// net/http's Shutdown counts such a connection as busy for its first five
// seconds, which held shutdown for as long (and past a short
// ShutdownTimeout). Once shutdown has begun net/http serves no request read
// on a connection, so closing the fresh ones loses nothing.
type freshConns struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (f *freshConns) track(c net.Conn, s http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s != http.StateNew {
		delete(f.conns, c)
		return
	}
	if f.conns == nil {
		f.conns = map[net.Conn]struct{}{}
	}
	f.conns[c] = struct{}{}
}

func (f *freshConns) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		_ = c.Close()
	}
}
