// The scalar fields of a CheckpointState, listed once. The HDF5 writer and reader
// (checkpoint_file.cpp), the rank-to-rank broadcast (state_broadcast.cpp) and inspect's
// fallback for damaged files walk these lists, so a field is added in one place.
//
// v(name, field, required) is called per field, in a fixed order; field is an int64_t,
// uint64_t, double or std::string (the ABM series: std::vector<int64_t|double>), const
// when the state is. A field with required = false may be missing from files written
// before it existed and then keeps its default. The name is the HDF5 attribute's (or,
// for the series, the dataset's) name.
#pragma once
#include "checkpoints/checkpoint_state.h"

namespace abm {

// Root attributes. format_version, created and tool_version are stamped by the writer.
template <class State, class V>
void visit_root_fields(State& s, V&& v) {
  v("format_version", s.format_version, true);
  v("step", s.step, true);
  v("epoch", s.epoch, true);
  v("samples_seen", s.samples_seen, true);
  v("tokens_seen", s.tokens_seen, true);
  v("global_batch", s.global_batch, true);
  v("world_size", s.world_size, true);
  v("created", s.created, true);
  v("tool_version", s.tool_version, true);
  v("config", s.config, true);
  v("base_model", s.base_model, true);
  v("base_fingerprint", s.base_fingerprint, true);
  v("data_fingerprint", s.data_fingerprint, false);
}

// /optimizer attributes (the moments are datasets, one per trainable tensor).
template <class Opt, class V>
void visit_optimizer_fields(Opt& o, V&& v) {
  v("step", o.step, true);
  v("beta1", o.beta1, true);
  v("beta2", o.beta2, true);
  v("eps", o.eps, true);
  v("weight_decay", o.weight_decay, true);
}

// /scheduler attributes.
template <class Sched, class V>
void visit_scheduler_fields(Sched& l, V&& v) {
  v("kind", l.kind, true);
  v("peak", l.peak, true);
  v("warmup", l.warmup, true);
  v("total", l.total, true);
  v("min_ratio", l.min_ratio, true);
}

// /rng attributes (the generator states are datasets).
template <class State, class V>
void visit_rng_fields(State& s, V&& v) {
  v("sampler_seed", s.sampler_seed, true);
}

// /abm attributes.
template <class Abm, class V>
void visit_abm_fields(Abm& a, V&& v) {
  v("seed", a.seed, true);
  v("margin", a.margin, true);
  v("lr", a.lr, true);
  v("seconds", a.seconds, true);
  v("steps", a.steps, true);
  v("scope", a.scope, true);
  v("teacher", a.teacher, true);
  v("teacher_steps", a.teacher_steps, false);
  v("teacher_loss", a.teacher_loss, false);
  v("teacher_seconds", a.teacher_seconds, false);
}

// /abm datasets, 1-D.
template <class Abm, class V>
void visit_abm_series(Abm& a, V&& v) {
  v("samples", a.samples, true);
  v("layers", a.layers, true);
  v("loss", a.loss, true);
  v("accuracy", a.accuracy, true);
}

}  // namespace abm
