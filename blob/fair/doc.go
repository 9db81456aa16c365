// Package fair protects tenants from each other's load on the blob stores.
//
// Store wraps a blob.Store with three mechanisms:
//
//   - a per-tenant in-flight cap (Config.InFlight, by tier): the request
//     past it fails at once with blob.ErrBusy (HTTP 429), rather than
//     queueing without bound;
//
//   - a per-tenant byte-rate token bucket (Config.Rate, by tier) on upload
//     and download bytes; off by default, since a static rate wastes
//     capacity other tenants are not using;
//
//   - a Scheduler that shares the upload capacity (a number of slots) among
//     tenants by weighted start-time fair queuing, at the granularity of a
//     chunk (Config.ChunkSize), so a 64 MiB upload never holds a slot for
//     more than one chunk. Weights come from the tier (free 1, pro 2,
//     enterprise 4 by default). A tenant that arrives behind a flood is
//     served next; while others are active a tenant holds at most
//     TenantSlots, and alone it may use every slot (work-conserving).
//
//     sched, err := fair.NewScheduler(&fair.SchedulerConfig{Slots: 4})
//     if err != nil {
//     return err
//     }
//     store, err := fair.New(inner, &fair.Config{Scheduler: sched, InFlight: 16})
//
// The state is per process. Several Tenantry processes each schedule their
// own capacity; a cluster-wide rate would need a shared limiter (Redis
// GCRA), which this package does not provide.
package fair
