//! ARG against the reference implementation: tests/data/golden/arg-tiny (copied from ../shared/golden) holds the
//! weights, a batch, the outputs and 15 gradients of the original PyTorch ARGModel on a tiny random BERT (eval
//! mode). With the reference's quirks on, every output matches to 1e-5 and every recorded gradient to 1e-4.

use std::collections::HashMap;
use std::path::PathBuf;

use argus::guidance::arg::{Arg, ArgConfig, ArgTargets};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden/arg-tiny").join(name)
}

fn load(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(golden(name), &Device::Cpu).unwrap()
}

/// ARG's targets of the golden batch (label, each rationale's usefulness and judgement).
fn golden_targets(inputs: &HashMap<String, Tensor>) -> ArgTargets {
    let as_f32 = |k: &str| inputs[k].to_dtype(DType::F32).unwrap();
    let as_u32 = |k: &str| inputs[k].to_dtype(DType::U32).unwrap();
    ArgTargets {
        label: as_f32("label"),
        useful: vec![as_f32("FTR_2_acc"), as_f32("FTR_3_acc")],
        judgement: vec![as_u32("FTR_2_pred"), as_u32("FTR_3_pred")],
        present: vec![],
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes");
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn arg_matches_the_reference_outputs_loss_and_gradients() {
    let bert: candle_transformers::models::bert::Config =
        serde_json::from_str(&std::fs::read_to_string(golden("tiny-bert-config.json")).unwrap()).unwrap();
    let config = ArgConfig { paper_quirks: true, ..Default::default() };
    // Every weight a variable, so that the loss can be differentiated; then the reference's values loaded in.
    let mut varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let arg = Arg::load(vb, config, &bert).unwrap();
    varmap.load(golden("weights.safetensors")).unwrap();

    let inputs = load("inputs.safetensors");
    let outputs = load("outputs.safetensors");
    let ids = |k: &str| inputs[k].to_dtype(DType::U32).unwrap();
    let (content, content_mask) = (ids("content"), inputs["content_masks"].clone());
    let (f2, f2_mask) = (ids("FTR_2"), inputs["FTR_2_masks"].clone());
    let (f3, f3_mask) = (ids("FTR_3"), inputs["FTR_3_masks"].clone());
    let encoded = arg.encode((&content, &content_mask), &[(&f2, &f2_mask), (&f3, &f3_mask)]).unwrap();
    let out = arg.forward(&encoded).unwrap();

    let mut checks: Vec<(&str, Tensor)> = vec![
        ("inter.content_hidden", encoded.news.clone()),
        ("inter.ftr2_hidden", encoded.rationales[0].0.clone()),
        ("inter.ftr3_hidden", encoded.rationales[1].0.clone()),
        ("inter.cross_attention_content_2.out", out.news_from_rationale[0].clone()),
        ("inter.cross_attention_content_3.out", out.news_from_rationale[1].clone()),
        ("inter.cross_attention_ftr_2.out", out.rationale_from_news[0].clone()),
        ("inter.cross_attention_ftr_3.out", out.rationale_from_news[1].clone()),
        ("classify_pred", out.p_fake.clone()),
        ("gate_value", out.gates.clone()),
        ("final_feature", out.final_feature.clone()),
        ("content_feature", out.news_feature.clone()),
        ("ftr_2_feature", out.rationale_features[0].clone()),
        ("ftr_3_feature", out.rationale_features[1].clone()),
        ("hard_ftr_2_pred", out.usefulness[0].clone()),
        ("hard_ftr_3_pred", out.usefulness[1].clone()),
        ("simple_ftr_2_pred", out.judgement_logits[0].clone()),
        ("simple_ftr_3_pred", out.judgement_logits[1].clone()),
    ];
    let loss = arg.loss(&out, &golden_targets(&inputs)).unwrap();
    checks.push(("loss", loss.total.clone()));
    checks.push(("loss_classify", loss.classify.clone()));
    // The reference records the auxiliary parts summed over the two perspectives (the total uses their means).
    checks.push(("loss_hard_aux", (&loss.usefulness * 2.0).unwrap()));
    checks.push(("loss_simple_aux", (&loss.judgement * 2.0).unwrap()));
    let mut report = Vec::new();
    for (name, ours) in &checks {
        let d = max_diff(&ours.flatten_all().unwrap(), &outputs[*name].flatten_all().unwrap());
        report.push(format!("{name}: {d:.2e}"));
        assert!(d <= 1e-5, "{name} differs from the reference by {d}\n{}", report.join("\n"));
    }

    // Gradients of the loss, for the 15 parameters the reference recorded.
    let grads = loss.total.backward().unwrap();
    let vars = varmap.data().lock().unwrap();
    let mut n = 0;
    for (key, expected) in &outputs {
        let Some(param) = key.strip_prefix("grad.") else { continue };
        let var = vars.get(param).unwrap_or_else(|| panic!("no parameter {param}"));
        let grad = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {param}"));
        let d = max_diff(grad, expected);
        assert!(d <= 1e-4, "gradient of {param} differs from the reference by {d}");
        n += 1;
    }
    assert_eq!(n, 15);
}

#[test]
fn the_masked_variant_ignores_what_is_behind_the_padding() {
    let bert: candle_transformers::models::bert::Config =
        serde_json::from_str(&std::fs::read_to_string(golden("tiny-bert-config.json")).unwrap()).unwrap();
    let bytes = std::fs::read(golden("weights.safetensors")).unwrap();
    let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu).unwrap();
    let inputs = load("inputs.safetensors");
    let ids = |k: &str| inputs[k].to_dtype(DType::U32).unwrap();
    let (content, content_mask) = (ids("content"), inputs["content_masks"].clone());
    let (f3, f3_mask) = (ids("FTR_3"), inputs["FTR_3_masks"].clone());
    // The same rationale with different token ids behind its padding.
    let f2_mask = inputs["FTR_2_masks"].clone();
    let f2 = ids("FTR_2");
    let seven = (f2.ones_like().unwrap() * 7.0).unwrap().to_dtype(DType::U32).unwrap();
    let f2_other = f2_mask.ne(0f32).unwrap().where_cond(&f2, &seven).unwrap();
    let run = |quirks: bool, f2: &Tensor| {
        let arg = Arg::load(vb.clone(), ArgConfig { paper_quirks: quirks, ..Default::default() }, &bert).unwrap();
        let enc = arg.encode((&content, &content_mask), &[(f2, &f2_mask), (&f3, &f3_mask)]).unwrap();
        arg.forward(&enc).unwrap().final_feature
    };
    // The reference's means count padded positions (the golden README measured 2.2e-3 for this change) ...
    assert!(max_diff(&run(true, &f2), &run(true, &f2_other)) > 1e-4);
    // ... the masked variant does not.
    assert!(max_diff(&run(false, &f2), &run(false, &f2_other)) < 1e-6);
}

#[test]
fn packing_the_padding_away_changes_no_output_nor_gradient_in_the_masked_mode() {
    // The masked mode runs each encoder layer's position-wise parts on real tokens only (BertStack::pack); the
    // same weights and batch with packing off must give the same outputs and gradients.
    let bert: candle_transformers::models::bert::Config =
        serde_json::from_str(&std::fs::read_to_string(golden("tiny-bert-config.json")).unwrap()).unwrap();
    let inputs = load("inputs.safetensors");
    let ids = |k: &str| inputs[k].to_dtype(DType::U32).unwrap();
    let run = |pack: bool| {
        let mut varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let mut arg = Arg::load(vb, ArgConfig::default(), &bert).unwrap();
        varmap.load(golden("weights.safetensors")).unwrap();
        assert!(arg.news_encoder.pack && arg.rationale_encoder.pack, "the masked mode packs");
        arg.news_encoder.pack = pack;
        arg.rationale_encoder.pack = pack;
        let (content, content_mask) = (ids("content"), inputs["content_masks"].clone());
        let (f2, f2_mask) = (ids("FTR_2"), inputs["FTR_2_masks"].clone());
        let (f3, f3_mask) = (ids("FTR_3"), inputs["FTR_3_masks"].clone());
        assert!(content_mask.sum_all().unwrap().to_scalar::<f32>().unwrap() < content_mask.elem_count() as f32);
        let encoded = arg.encode((&content, &content_mask), &[(&f2, &f2_mask), (&f3, &f3_mask)]).unwrap();
        let out = arg.forward(&encoded).unwrap();
        // Training mode from the frozen part's outputs (what a retrain reads from the cache), with dropout: the
        // packed path draws the same masks, so a seeded run trains the same model either way.
        let news = arg.news_encoder.forward_frozen(&content, &content_mask).unwrap();
        let frozen = |ids: &Tensor, mask: &Tensor| {
            (arg.rationale_encoder.forward_frozen(ids, mask).unwrap(), mask.to_dtype(DType::F32).unwrap())
        };
        let dropout = argus::models::encoder::Dropout::new(7);
        let training = arg
            .encode_top((&news, &content_mask), &[frozen(&f2, &f2_mask), frozen(&f3, &f3_mask)], Some(&dropout))
            .unwrap();
        let trained = arg.forward_t(&training, Some(&dropout)).unwrap();
        let targets = golden_targets(&inputs);
        let loss = arg.loss(&out, &targets).unwrap();
        let train_loss = arg.loss(&trained, &targets).unwrap();
        let grads = (&loss.total + &train_loss.total).unwrap().backward().unwrap();
        let vars = varmap.data().lock().unwrap();
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        let grads: Vec<(String, Option<Tensor>)> =
            names.iter().map(|n| ((*n).clone(), grads.get(vars[*n].as_tensor()).cloned())).collect();
        (vec![out.p_fake, out.gates, out.final_feature, loss.total, trained.p_fake, train_loss.total], grads)
    };
    let (packed, packed_grads) = run(true);
    let (padded, padded_grads) = run(false);
    for (a, b) in packed.iter().zip(&padded) {
        let d = max_diff(&a.flatten_all().unwrap(), &b.flatten_all().unwrap());
        assert!(d <= 1e-5, "an output differs by {d}");
    }
    let mut compared = 0;
    for ((name, a), (_, b)) in packed_grads.iter().zip(&padded_grads) {
        match (a, b) {
            (Some(a), Some(b)) => {
                let d = max_diff(a, b);
                assert!(d <= 1e-5, "gradient of {name} differs by {d}");
                compared += 1;
            }
            (None, None) => {}
            _ => panic!("{name} has a gradient one way only"),
        }
    }
    assert!(compared > 30, "{compared} gradients compared");
}

fn golden_d(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden/argd-tiny").join(name)
}

#[test]
fn argd_matches_the_reference_student_outputs_loss_and_gradients() {
    use argus::guidance::argd::{ArgD, ArgdConfig};
    let bert: candle_transformers::models::bert::Config =
        serde_json::from_str(&std::fs::read_to_string(golden_d("tiny-bert-config.json")).unwrap()).unwrap();
    let mut varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let teacher = ArgConfig { paper_quirks: true, ..Default::default() };
    let argd = ArgD::load(vb, ArgdConfig { paper_quirks: true, ..Default::default() }, &bert, Some(teacher)).unwrap();
    varmap.load(golden_d("weights.safetensors")).unwrap();
    let inputs = candle_core::safetensors::load(golden_d("inputs.safetensors"), &Device::Cpu).unwrap();
    let outputs = candle_core::safetensors::load(golden_d("outputs.safetensors"), &Device::Cpu).unwrap();
    let ids = |k: &str| inputs[k].to_dtype(DType::U32).unwrap();
    let (content, mask) = (ids("content"), inputs["content_masks"].clone());
    let out = argd.forward(&content, &mask).unwrap();
    let teacher = argd.teacher.as_ref().unwrap();
    let (f2, f3) = (ids("FTR_2"), ids("FTR_3"));
    let encoded =
        teacher.encode((&content, &mask), &[(&f2, &inputs["FTR_2_masks"]), (&f3, &inputs["FTR_3_masks"])]).unwrap();
    let t_feature = argd.teacher_feature(&encoded).unwrap();
    let label = inputs["label"].to_dtype(DType::F32).unwrap();
    let loss = argd.loss(&out, &label, &t_feature).unwrap();
    for (name, ours) in [
        ("inter.student_bert_hidden", &out.bert_states),
        ("inter.student_block_out", &out.block_out),
        ("s_final_feature", &out.feature),
        ("classify_pred", &out.p_fake),
        ("t_final_feature", &t_feature),
        ("loss", &loss.total),
        ("loss_classify", &loss.classify),
        ("loss_kd", &loss.distill),
    ] {
        let d = max_diff(&ours.flatten_all().unwrap(), &outputs[name].flatten_all().unwrap());
        assert!(d <= 1e-5, "{name} differs from the reference by {d}");
    }
    // Student gradients match; the teacher is detached here (the reference lets gradients into it, unused).
    let grads = loss.total.backward().unwrap();
    let vars = varmap.data().lock().unwrap();
    let mut n = 0;
    for (key, expected) in &outputs {
        let Some(param) = key.strip_prefix("grad.") else { continue };
        let var = &vars[param];
        if param.starts_with("teacher.") {
            assert!(grads.get(var.as_tensor()).is_none(), "the teacher must get no gradient: {param}");
            continue;
        }
        let grad = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {param}"));
        let d = max_diff(grad, expected);
        assert!(d <= 1e-4, "gradient of {param} differs from the reference by {d}");
        n += 1;
    }
    assert_eq!(n, 8);
}

#[test]
fn the_bce_loss_and_its_gradient_stay_finite_when_the_sigmoid_saturates() {
    // Logits a head trained at a high learning rate reaches: sigmoid gives exactly 1 and 0 in f32, wrongly labelled.
    let x = candle_core::Var::new(&[30f32, -120.0, 0.3], &Device::Cpu).unwrap();
    let p = candle_nn::ops::sigmoid(x.as_tensor()).unwrap();
    let y = Tensor::new(&[0f32, 1.0, 1.0], &Device::Cpu).unwrap();
    let loss = argus::guidance::arg::bce(&p, &y).unwrap();
    assert!(loss.to_scalar::<f32>().unwrap().is_finite());
    let grads = loss.backward().unwrap();
    let g: Vec<f32> = grads.get(x.as_tensor()).unwrap().to_vec1().unwrap();
    assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    // Inside the bounds the loss is torch's: -mean(y log p + (1 - y) log(1 - p)).
    let q = Tensor::new(&[0.2f32, 0.7], &Device::Cpu).unwrap();
    let t = Tensor::new(&[0f32, 1.0], &Device::Cpu).unwrap();
    let expected = -((0.8f32).ln() + (0.7f32).ln()) / 2.0;
    let got = argus::guidance::arg::bce(&q, &t).unwrap().to_scalar::<f32>().unwrap();
    assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
}
