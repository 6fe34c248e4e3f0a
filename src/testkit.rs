//! Unit-test helpers: labs brought up on the fake kernel through the real
//! planner, executor and observation, with a record kept as `up` keeps it.

use crate::apply::{Intent, Kernel, apply};
use crate::kernel::fake::Fake;
use crate::kernel::seam::System;
use crate::plan::Op;
use crate::record::Record;
use crate::topology::{Lab, Options, parse_str};
use std::collections::BTreeSet;

pub const OBJ1: &str = include_str!("../examples/objective1-veth.yaml");
pub const OBJ2: &str = include_str!("../examples/objective2-bridge.yaml");
pub const OBJ3: &str = include_str!("../examples/objective3-nat.yaml");

/// A lab from YAML, names prefixed `t-`.
pub fn lab(text: &str, sandbox: bool) -> Lab {
    parse_str(
        text,
        "t.yaml",
        &Options {
            prefix: "t-".into(),
            sandbox,
            check_programs: false,
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A lab on the fake machine, with its record.
pub struct Run {
    pub fake: Fake,
    pub k: Kernel<Fake>,
    pub rec: Record,
    /// Every intent, in order, with what the fake had when it was recorded.
    pub intents: Vec<(Intent, BTreeSet<String>)>,
}

impl Run {
    pub fn new(fake: &Fake, lab: &Lab) -> Run {
        let host = fake.host();
        let id = crate::kernel::seam::NsHandle::id(&host).expect("host id");
        Run {
            fake: fake.clone(),
            k: Kernel::with(fake.clone(), host, &lab.name),
            rec: Record::new(&lab.name, lab.sandbox, id),
            intents: Vec::new(),
        }
    }

    /// What `nslab plan` would say: the planner on what the fake has, with
    /// the record's ownership and model.
    pub fn plan(&mut self, lab: &Lab) -> Vec<Op> {
        crate::lab::plan_in(&mut self.k, lab, Some(&self.rec))
            .unwrap_or_else(|e| panic!("plan: {e}"))
            .ops
    }

    /// The planner as `plan_in` runs it, its refusal kept (conflicts).
    pub fn try_plan(&mut self, lab: &Lab) -> crate::error::Result<Vec<Op>> {
        crate::lab::plan_in(&mut self.k, lab, Some(&self.rec)).map(|p| p.ops)
    }

    /// The executor, recording each intent as `up` does.
    pub fn apply(&mut self, ops: &[Op]) -> Result<(), crate::apply::ApplyError> {
        let fake = self.fake.clone();
        let rec = &mut self.rec;
        let intents = &mut self.intents;
        apply(&mut self.k, ops, &mut |i: Intent| {
            rec.note(&i);
            intents.push((i, objects(&fake)));
            Ok(())
        })
    }

    /// Plan and apply; the lab's model becomes the record's. Returns the plan.
    pub fn up(&mut self, lab: &Lab) -> Vec<Op> {
        let ops = self.plan(lab);
        self.apply(&ops)
            .unwrap_or_else(|e| panic!("apply: {e}\nplan:\n{}", listing(&ops)));
        self.rec.model = Some(lab.clone());
        ops
    }

    /// The host-forwarding bookkeeping file of this fake machine.
    pub fn forwarding_file(&self) -> std::path::PathBuf {
        self.k.sys.forwarding_dir().join("host-forwarding.json")
    }
}

pub fn listing(ops: &[Op]) -> String {
    ops.iter().map(|o| format!("  {o}\n")).collect()
}

/// Every namespace, link and NAT table of the fake, by name.
pub fn objects(f: &Fake) -> BTreeSet<String> {
    let w = f.w();
    let mut s = BTreeSet::new();
    for (name, n) in &w.ns {
        s.insert(format!("ns {name}"));
        for l in &n.links {
            s.insert(format!("link {name}/{}", l.name));
        }
        for t in n.nat.keys() {
            s.insert(format!("nat {name}/{t}"));
        }
    }
    s
}

/// Bring a lab up from nothing on a new fake machine; a second plan must be empty.
pub fn up_from_nothing(text: &str, sandbox: bool) -> (Run, Lab) {
    let fake = Fake::new();
    let l = lab(text, sandbox);
    let mut r = Run::new(&fake, &l);
    r.up(&l);
    let again = r.plan(&l);
    assert!(again.is_empty(), "second plan:\n{}", listing(&again));
    (r, l)
}
