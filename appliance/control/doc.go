// Package control adapts the appliance's data plane to what drives it: the
// configuration file and the admin API. [Engines] turns the file's engine
// section into one engine per worker (package appliance's NewHandlerFunc)
// with the services they share (key pool, key stocks, resumption cache, flow
// memory, negotiated set); [AdminSource] serves the admin API (package
// appliance/admin) from a running appliance.Appliance, reading engine state
// only on the workers' goroutines (Appliance.Inspect) and reconfiguring all
// engines or none.
//
// [EngineConfig] is the mapping from the file's settings to engine.Config;
// a run-time change through the admin API goes through the same mapping.
package control
