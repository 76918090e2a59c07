#include "abm/teacher.h"

#include "abm/gate_tap.h"
#include "core/check.h"
#include "core/progress.h"
#include "core/timer.h"

namespace abm {

at::Tensor range_input(const LlamaModel& model, const RepresentativeBatch& rb,
                       const std::vector<int64_t>& which, const at::Tensor& ids,
                       const std::vector<at::Tensor>* inputs) {
  if (model.has_embedding()) return model.embed(ids);
  ABM_CHECK(inputs, "layer range [", model.first(), ", ", model.last(),
            ") starts after the embedding: it needs input hidden states");
  const int64_t b = ids.size(0), T = ids.size(1), H = model.config().hidden;
  at::Tensor h = at::zeros({b, T, H}, at::TensorOptions().dtype(model.dtype()).device(model.device()));
  for (int64_t i = 0; i < b; ++i) {
    const at::Tensor& x = inputs->at(which[i]);  // [len, hidden]
    const int64_t len = static_cast<int64_t>(rb.ids[which[i]].size());
    ABM_CHECK(x.dim() == 2 && x.size(0) == len && x.size(1) == H, "input hidden state of sample ",
              which[i], " is ", x.sizes(), ", expected [", len, ", ", H, "]");
    h[i].narrow(0, 0, len).copy_(x);
  }
  return h;
}

TeacherSigns capture_teacher(LlamaModel& model, const RepresentativeBatch& rb,
                             const std::vector<int64_t>& layers,
                             const std::vector<int64_t>& which, int64_t micro,
                             const std::vector<at::Tensor>* inputs, bool keep_outputs,
                             const TeacherHook& hook) {
  Timer timer;
  at::NoGradGuard ng;
  TeacherSigns t;
  t.layers = layers;
  t.on.resize(rb.size());
  if (keep_outputs) t.outputs.resize(rb.size());
  GateTaps taps(model, layers);
  Progress progress = Progress::pass((int64_t(which.size()) + micro - 1) / micro,
                                     "abm: teacher pass ", "micro-batch");
  for (size_t at0 = 0; at0 < which.size(); at0 += micro) {
    std::vector<int64_t> part(which.begin() + at0,
                              which.begin() + std::min(which.size(), at0 + size_t(micro)));
    PaddedSamples p = pad_samples(rb, part);
    at::Tensor out = model.forward_layers(range_input(model, rb, part, p.ids, inputs));
    for (size_t i = 0; i < part.size(); ++i) {
      const int64_t k = part[i], len = static_cast<int64_t>(rb.ids[k].size());
      auto& signs = t.on[k];
      signs.clear();
      for (size_t j = 0; j < layers.size(); ++j)
        signs.push_back(taps.output(j)[i].narrow(0, 0, len).gt(0).contiguous());  // [len, I]
      if (keep_outputs) t.outputs[k] = out[i].narrow(0, 0, len).clone();
    }
    if (hook) hook(taps, part, p);
    taps.clear();
    progress.update(int64_t(at0 / size_t(micro)) + 1);
  }
  progress.finish();
  t.seconds = timer.seconds();
  return t;
}

at::Tensor padded_signs(const TeacherSigns& t, size_t j, const std::vector<int64_t>& which,
                        int64_t T) {
  const at::Tensor& first = t.on.at(which.at(0)).at(j);
  at::Tensor s = at::zeros({int64_t(which.size()), T, first.size(1)}, first.options());
  for (size_t i = 0; i < which.size(); ++i) {
    const auto& row = t.on.at(which[i]);
    ABM_CHECK(row.size() > j, "no teacher signs for sample ", which[i], " on this rank");
    s[i].narrow(0, 0, row[j].size(0)).copy_(row[j]);
  }
  return s;
}

}  // namespace abm
