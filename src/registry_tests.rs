//! Unit tests of the registration table (docs/registry.md), on heap tables
//! with made-up identities and a fake probe, and on real processes.

use super::os::{parse_stat, Stat};
use super::*;
use crate::clock::now_ms;
use std::cell::{Cell, RefCell};

const BOOT: u32 = 0xb007;
const NS: u32 = 0xefff_fffc;

fn id(pid: u32, start: u64) -> Identity {
    Identity {
        pid,
        start,
        ns: NS,
        boot: BOOT,
    }
}

/// A fake OS: the processes (pid, start) that live, and how many times it
/// was asked.
struct Os {
    live: RefCell<Vec<(u32, u64)>>,
    calls: Cell<u32>,
}

impl Os {
    fn new(live: &[(u32, u64)]) -> Self {
        Os {
            live: RefCell::new(live.to_vec()),
            calls: Cell::new(0),
        }
    }

    fn probe(&self) -> impl Fn(u32, u64) -> Verdict + '_ {
        move |pid, start| {
            self.calls.set(self.calls.get() + 1);
            if self.live.borrow().contains(&(pid, start)) {
                Verdict::Alive
            } else {
                Verdict::Dead
            }
        }
    }

    fn kill(&self, pid: u32) {
        self.live.borrow_mut().retain(|p| p.0 != pid);
    }

    fn spawn(&self, pid: u32, start: u64) {
        self.live.borrow_mut().push((pid, start));
    }
}

fn w0(words: &[AtomicU64], i: usize) -> u64 {
    words[i * ENTRY_WORDS].load(Relaxed)
}

#[test]
fn register_then_unregister() {
    let t = new_table(ENTRIES);
    let os = Os::new(&[(100, 1000)]);
    let me = id(100, 1000);
    let cache = VerdictCache::new(ENTRIES);
    let h = register(&t, &me, os.probe());
    assert_ne!(h, 0);
    assert_eq!(h >> 28, 0, "a holder has 28 bits");
    let i = (h & 0x3ff) as usize;
    assert_eq!(pid_of(w0(&t, i)), 100);
    assert_eq!(os.calls.get(), 0, "a free entry needs no probe");
    assert_eq!(verdict(&t, h, &me, os.probe(), 0, &cache), Verdict::Alive);

    assert!(unregister(&t, h));
    assert_eq!(pid_of(w0(&t, i)), 0, "the entry is free again");
    let calls = os.calls.get();
    let fresh = VerdictCache::new(ENTRIES);
    assert_eq!(verdict(&t, h, &me, os.probe(), 1, &fresh), Verdict::Dead);
    assert_eq!(
        os.calls.get(),
        calls,
        "a freed entry is judged without a probe"
    );
    assert!(!unregister(&t, h), "a second unregister frees nothing");
}

#[test]
fn holders_are_never_zero() {
    // Entry 0 is the only entry whose generation could make holder 0: every
    // generation whose next value has low 18 bits 0, and the edges of the
    // 32-bit generation.
    let os = Os::new(&[]);
    for g in [GEN18 - 1, GEN18, 2 * GEN18 + 1, u32::MAX - 1, u32::MAX, 0] {
        let t = new_table(1);
        t[0].store(pack_w0(g, 0), Relaxed);
        let h = register(&t, &id(5, 50), os.probe());
        assert_ne!(h, 0, "free generation {g:#x}");
        assert_eq!(h & 0x3ff, 0);
        assert_eq!(
            h >> 10,
            gen_of(w0(&t, 0)) & GEN18,
            "the holder names the claim"
        );
    }
    // And through many registrations of one entry.
    let t = new_table(1);
    for _ in 0..(1 << 18) + 10 {
        let h = register(&t, &id(5, 50), os.probe());
        assert_ne!(h, 0);
        assert!(unregister(&t, h));
    }
}

#[test]
fn a_full_table_gives_anonymous_holders() {
    let t = new_table(4);
    let os = Os::new(&[(1, 1), (2, 2), (3, 3), (4, 4), (9, 9)]);
    let mut holders: Vec<u32> = (1..=4)
        .map(|p| register(&t, &id(p, p.into()), os.probe()))
        .collect();
    assert!(holders.iter().all(|&h| h != 0));
    holders.sort_unstable();
    holders.dedup();
    assert_eq!(holders.len(), 4, "four entries, four holders: {holders:?}");
    assert_eq!(register(&t, &id(9, 9), os.probe()), 0, "full: anonymous");
    assert_eq!(os.calls.get(), 4, "each live owner probed once");
    // Anonymous is never judged.
    let cache = VerdictCache::new(4);
    assert_eq!(
        verdict(&t, 0, &id(9, 9), os.probe(), 0, &cache),
        Verdict::Unknown
    );
}

#[test]
fn a_full_table_frees_the_entry_of_a_dead_owner() {
    let t = new_table(4);
    let os = Os::new(&[(1, 1), (2, 2), (3, 3), (4, 4), (9, 9)]);
    let hs: Vec<u32> = (1..=4)
        .map(|p| register(&t, &id(p, p.into()), os.probe()))
        .collect();
    os.kill(3);
    let h9 = register(&t, &id(9, 9), os.probe());
    assert_ne!(h9, 0);
    assert_eq!(h9 & 0x3ff, hs[2] & 0x3ff, "process 3's entry, reused");
    assert_ne!(h9, hs[2]);
    let cache = VerdictCache::new(4);
    assert_eq!(
        verdict(&t, hs[2], &id(9, 9), os.probe(), 0, &cache),
        Verdict::Dead
    );
    assert_eq!(
        verdict(&t, h9, &id(9, 9), os.probe(), 0, &cache),
        Verdict::Alive
    );
}

#[test]
fn a_freed_entry_kills_the_old_holder_and_a_new_registration_differs() {
    let t = new_table(1);
    let os = Os::new(&[(7, 70), (8, 80)]);
    let cache = VerdictCache::new(1);
    let old = register(&t, &id(7, 70), os.probe());
    assert!(unregister(&t, old));
    let new = register(&t, &id(8, 80), os.probe());
    assert_ne!(new, 0);
    assert_ne!(new, old, "same entry, new generation");
    assert_eq!(new & 0x3ff, old & 0x3ff);
    assert_eq!(
        verdict(&t, old, &id(8, 80), os.probe(), 0, &cache),
        Verdict::Dead
    );
    assert_eq!(
        verdict(&t, new, &id(8, 80), os.probe(), 0, &cache),
        Verdict::Alive
    );
    assert!(
        !unregister(&t, old),
        "the old holder cannot free the new owner"
    );
    assert_eq!(pid_of(w0(&t, 0)), 8);
}

#[test]
fn a_reused_pid_is_dead() {
    let t = new_table(8);
    let os = Os::new(&[(50, 500)]);
    let h = register(&t, &id(50, 500), os.probe());
    // Process 50 dies; another process gets pid 50 later.
    os.kill(50);
    os.spawn(50, 600);
    let cache = VerdictCache::new(8);
    assert_eq!(
        verdict(&t, h, &id(1, 1), os.probe(), 0, &cache),
        Verdict::Dead
    );
    assert_eq!(
        pid_of(w0(&t, (h & 0x3ff) as usize)),
        0,
        "a dead verdict frees the entry"
    );
}

#[test]
fn another_pid_namespace_is_unknown() {
    let t = new_table(8);
    let os = Os::new(&[]);
    let theirs = Identity {
        ns: 77,
        ..id(50, 500)
    };
    let h = register(&t, &theirs, os.probe());
    let cache = VerdictCache::new(8);
    assert_eq!(
        verdict(&t, h, &id(1, 1), os.probe(), 0, &cache),
        Verdict::Unknown
    );
    let unknown_ns = Identity { ns: 0, ..id(1, 1) };
    assert_eq!(
        verdict(&t, h, &unknown_ns, os.probe(), 0, &cache),
        Verdict::Unknown
    );
    // A process that cannot name its namespace stays anonymous: nobody could
    // ever prove its registration dead.
    let no_ns = Identity {
        ns: 0,
        ..id(51, 510)
    };
    assert_eq!(register(&t, &no_ns, os.probe()), 0);
    // An entry that names no namespace anyway (a writer's, an older build's)
    // is never probed either.
    let h2 = register(&t, &id(52, 520), os.probe());
    let e = entry(&t, (h2 & 0x3ff) as usize);
    e[2].store(e[2].load(Relaxed) & 0xffff_ffff, Relaxed);
    assert_eq!(
        verdict(&t, h2, &id(1, 1), os.probe(), 0, &cache),
        Verdict::Unknown
    );
    assert_eq!(
        os.calls.get(),
        0,
        "a pid of another namespace is never probed"
    );
    assert_eq!(
        pid_of(w0(&t, (h & 0x3ff) as usize)),
        50,
        "and its entry stays"
    );
}

#[test]
fn another_boot_is_dead_without_a_probe() {
    let t = new_table(8);
    let os = Os::new(&[(50, 500)]);
    let h = register(
        &t,
        &Identity {
            boot: 1,
            ..id(50, 500)
        },
        os.probe(),
    );
    let cache = VerdictCache::new(8);
    // The caller's boot unknown: the probe decides.
    let unknown_boot = Identity {
        boot: 0,
        ..id(1, 1)
    };
    assert_eq!(
        verdict(&t, h, &unknown_boot, os.probe(), 0, &cache),
        Verdict::Alive
    );
    assert_eq!(os.calls.get(), 1);
    let fresh = VerdictCache::new(8);
    assert_eq!(
        verdict(&t, h, &id(1, 1), os.probe(), 0, &fresh),
        Verdict::Dead
    );
    assert_eq!(os.calls.get(), 1, "another boot needs no probe");
}

#[test]
fn reset_all_frees_only_other_boots() {
    let t = new_table(8);
    let os = Os::new(&[]);
    let old = register(
        &t,
        &Identity {
            boot: 1,
            ..id(10, 1)
        },
        os.probe(),
    );
    let unknown = register(
        &t,
        &Identity {
            boot: 0,
            ..id(11, 1)
        },
        os.probe(),
    );
    let ours = register(&t, &id(12, 1), os.probe());
    // A registration of this boot in progress: w0 claimed, tags not stored.
    let free_i = (0..8).find(|&i| pid_of(w0(&t, i)) == 0).unwrap();
    let g = gen_of(w0(&t, free_i));
    t[free_i * ENTRY_WORDS].store(pack_w0(g + 1, 13), Relaxed);

    assert_eq!(reset_all(&t, BOOT), 1);
    assert_eq!(reset_all(&t, BOOT), 0, "a second pass finds nothing");
    assert_eq!(reset_all(&t, 0), 0, "an unknown boot frees nothing");
    let taken = |h: u32| pid_of(w0(&t, (h & 0x3ff) as usize)) != 0;
    assert!(!taken(old));
    assert!(taken(unknown) && taken(ours));
    assert_eq!(
        pid_of(w0(&t, free_i)),
        13,
        "the registration in progress stays"
    );
}

#[test]
fn a_registration_in_progress_is_unknown() {
    let t = new_table(2);
    let os = Os::new(&[]);
    // A previous owner left its words, tagged with its generation.
    let h = register(&t, &id(7, 70), os.probe());
    assert!(unregister(&t, h));
    let i = (h & 0x3ff) as usize;
    // A new owner has claimed w0 and not yet stored w1..w3.
    let g = gen_of(w0(&t, i)) + 1;
    t[i * ENTRY_WORDS].store(pack_w0(g, 9), Relaxed);
    let h9 = holder_of(i, g);
    let cache = VerdictCache::new(2);
    assert_eq!(
        verdict(&t, h9, &id(1, 1), os.probe(), 0, &cache),
        Verdict::Unknown
    );
    assert_eq!(
        os.calls.get(),
        0,
        "never probed with the previous owner's start"
    );
    // Nor does a registration judge it.
    let other = register(&t, &id(8, 80), os.probe());
    assert_ne!(other & 0x3ff, i as u32);
    assert_eq!(pid_of(w0(&t, i)), 9);
}

#[test]
fn the_cache_spares_probes_for_cache_ms() {
    let t = new_table(8);
    let os = Os::new(&[(50, 500)]);
    let me = id(1, 1);
    let h = register(&t, &id(50, 500), os.probe());
    let cache = VerdictCache::new(8);
    assert_eq!(
        verdict(&t, h, &me, os.probe(), 1000, &cache),
        Verdict::Alive
    );
    assert_eq!(os.calls.get(), 1);
    assert_eq!(
        verdict(&t, h, &me, os.probe(), 1000 + CACHE_MS - 1, &cache),
        Verdict::Alive
    );
    assert_eq!(
        os.calls.get(),
        1,
        "a verdict younger than CACHE_MS is reused"
    );
    assert_eq!(
        verdict(&t, h, &me, os.probe(), 1000 + CACHE_MS, &cache),
        Verdict::Alive
    );
    assert_eq!(os.calls.get(), 2, "a verdict CACHE_MS old is not");
    // A stale alive verdict is not believed past its age.
    os.kill(50);
    let probed = 1000 + CACHE_MS;
    assert_eq!(
        verdict(&t, h, &me, os.probe(), probed + CACHE_MS - 1, &cache),
        Verdict::Alive
    );
    assert_eq!(
        verdict(&t, h, &me, os.probe(), probed + CACHE_MS, &cache),
        Verdict::Dead
    );
    assert_eq!(os.calls.get(), 3);
}

#[test]
fn dead_is_final() {
    let t = new_table(8);
    let os = Os::new(&[]);
    let me = id(1, 1);
    let h = register(&t, &id(50, 500), os.probe());
    let i = (h & 0x3ff) as usize;
    let taken = w0(&t, i);
    let cache = VerdictCache::new(8);
    assert_eq!(verdict(&t, h, &me, os.probe(), 0, &cache), Verdict::Dead);
    assert_eq!(os.calls.get(), 1);
    // A writer puts the dead registration back; the process "lives" again.
    t[i * ENTRY_WORDS].store(taken, Relaxed);
    os.spawn(50, 500);
    assert_eq!(
        verdict(&t, h, &me, os.probe(), 1_000_000, &cache),
        Verdict::Dead
    );
    assert_eq!(
        os.calls.get(),
        1,
        "a dead registration is never probed again"
    );
    assert_eq!(pid_of(w0(&t, i)), 0, "and is freed again");
}

#[test]
fn the_cache_keys_on_the_whole_generation() {
    // Two registrations of one entry whose generations share their low 18
    // bits: a Dead cached for the first says nothing about the second.
    let t = new_table(1);
    let os = Os::new(&[(60, 600)]);
    let me = id(1, 1);
    let cache = VerdictCache::new(1);
    let h = register(&t, &id(50, 500), os.probe());
    assert_eq!(verdict(&t, h, &me, os.probe(), 0, &cache), Verdict::Dead);
    let g = gen_of(w0(&t, 0));
    t[0].store(pack_w0(g.wrapping_add((1 << 18) - 2), 0), Relaxed);
    let h2 = register(&t, &id(60, 600), os.probe());
    assert_eq!(h2, h, "the holder bits wrapped");
    assert_eq!(verdict(&t, h2, &me, os.probe(), 1, &cache), Verdict::Alive);
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Any words, any holder, any identity: every operation returns.
#[test]
fn garbage_words_never_panic() {
    let mut seen = [0u32; 3];
    for seed in 1..3000u64 {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let n = (xorshift(&mut s) % 6) as usize;
        let extra = (xorshift(&mut s) % 4) as usize;
        let t: Box<[AtomicU64]> = (0..n * ENTRY_WORDS + extra)
            .map(|_| AtomicU64::new(0))
            .collect();
        let me = Identity {
            pid: xorshift(&mut s) as u32 % 4,
            start: xorshift(&mut s),
            ns: [0, NS, xorshift(&mut s) as u32][(s % 3) as usize],
            boot: [0, BOOT, xorshift(&mut s) as u32][(s % 3) as usize],
        };
        // Random words, half of the entries with consistent tags and this
        // process's namespace and boot, so the deep paths are reached too.
        for w in t.iter() {
            w.store(xorshift(&mut s), Relaxed);
        }
        for i in 0..n {
            if xorshift(&mut s) % 2 == 0 {
                let g = u64::from(gen_of(w0(&t, i)));
                let e = entry(&t, i);
                e[1].store((xorshift(&mut s) << 24) | (g & TAG24), Relaxed);
                e[2].store((u64::from(me.ns) << 32) | g, Relaxed);
                e[3].store((u64::from(me.boot) << 32) | g, Relaxed);
            }
        }
        let coin = xorshift(&mut s);
        let probe = move |pid: u32, start: u64| match (u64::from(pid) ^ start ^ coin) % 3 {
            0 => Verdict::Alive,
            1 => Verdict::Dead,
            _ => Verdict::Unknown,
        };
        let cache = VerdictCache::new(n);
        for k in 0..8 {
            let holder = if k % 2 == 0 && n > 0 {
                let i = (xorshift(&mut s) % n as u64) as usize;
                holder_of(i, gen_of(w0(&t, i)))
            } else {
                xorshift(&mut s) as u32
            };
            let now = xorshift(&mut s);
            let v = verdict(&t, holder, &me, probe, now, &cache);
            seen[v.code() as usize - 1] += 1;
            let _ = verdict(&t, holder, &me, probe, now.wrapping_add(1), &cache);
            let _ = unregister(&t, xorshift(&mut s) as u32);
        }
        let h = register(&t, &me, probe);
        assert!(
            h == 0 || index_of(h, n).is_some(),
            "a holder names an entry"
        );
        let _ = reset_all(&t, me.boot);
    }
    assert!(
        seen.iter().all(|&c| c > 0),
        "every verdict reached: {seen:?}"
    );
}

#[test]
fn stat_parses_after_the_last_parenthesis() {
    let fields = "S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 4242 19 20";
    for comm in ["a", "a b", "(x) y)", ")", "a) 1 2 3 (b"] {
        let text = format!("123 ({comm}) {fields}\n");
        assert_eq!(
            parse_stat(&text),
            Some(Stat {
                pid: 123,
                start: 4242
            }),
            "{text}"
        );
    }
    assert_eq!(parse_stat(""), None);
    assert_eq!(parse_stat("123 (a) S 1 2"), None);
    assert_eq!(parse_stat(") 1 ("), None);
    assert_eq!(
        parse_stat("x (a) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 1"),
        None
    );
}

#[test]
fn the_current_identity_is_this_process() {
    let me = Identity::current();
    assert_eq!(me.pid, std::process::id());
    assert_eq!(Identity::current(), me, "computed once");
    if std::path::Path::new("/proc/self/stat").exists() {
        assert_ne!(me.start, 0);
        assert_ne!(me.ns, 0);
    }
}

#[test]
fn the_os_probe_tells_live_dead_and_reused_pids() {
    let me = Identity::current();
    if me.start == 0 {
        return; // No usable /proc here: the probe answers Unknown.
    }
    assert_eq!(os_probe(me.pid, me.start), Verdict::Alive);
    assert_eq!(
        os_probe(me.pid, me.start + 1),
        Verdict::Dead,
        "another start: reused"
    );
    assert_eq!(os_probe(me.pid, 0), Verdict::Unknown);
    assert_eq!(os_probe(0, 1), Verdict::Unknown);
    assert_eq!(os_probe(u32::MAX, 1), Verdict::Unknown);
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert_eq!(
        os_probe(pid, me.start),
        Verdict::Dead,
        "a reaped child is gone"
    );
}

#[test]
fn a_registration_is_cached_and_released() {
    let t = new_table(ENTRIES);
    let reg = Registration::new();
    let h = reg.holder(&t, Identity::current, os_probe);
    assert_ne!(h, 0);
    let me = Identity::current();
    assert_eq!(
        reg.holder(
            &t,
            || unreachable!("the cached holder needs no identity"),
            os_probe
        ),
        h
    );
    // Threads of one process share it.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| assert_eq!(reg.holder(&t, Identity::current, os_probe), h));
        }
    });
    let cache = VerdictCache::new(ENTRIES);
    assert_eq!(
        verdict(&t, h, &me, os_probe, now_ms(), &cache),
        Verdict::Alive
    );
    assert!(reg.release(&t));
    assert!(!reg.release(&t));
    assert_eq!(
        verdict(&t, h, &me, os_probe, now_ms(), &cache),
        Verdict::Dead
    );
    let taken = (0..ENTRIES).filter(|&i| pid_of(w0(&t, i)) != 0).count();
    assert_eq!(taken, 0, "racing first uses leave no extra entry");
}

#[test]
fn racing_first_uses_register_once() {
    let t = new_table(ENTRIES);
    let reg = Registration::new();
    let holders: Vec<u32> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| reg.holder(&t, Identity::current, os_probe)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        holders.iter().all(|&h| h == holders[0] && h != 0),
        "{holders:?}"
    );
    let taken = (0..ENTRIES).filter(|&i| pid_of(w0(&t, i)) != 0).count();
    assert_eq!(taken, 1, "the losers gave their entries back");
}

/// A real fork: the child registers on its own on its first use of the
/// parent's `Registration` and gets another holder; once it is dead and
/// reaped, the real probe finds its holder dead and the parent's alive.
#[test]
fn a_forked_child_gets_its_own_holder() {
    let n = TABLE_WORDS + 2;
    let len = n * std::mem::size_of::<AtomicU64>();
    // SAFETY: an anonymous shared mapping; no file, no address hint.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    // SAFETY: the mapping is `len` bytes, page-aligned, zero-filled (a valid
    // AtomicU64 array) and outlives `words` (unmapped at the end).
    let words = unsafe { std::slice::from_raw_parts(p as *const AtomicU64, n) };
    let (table, out) = words.split_at(TABLE_WORDS);

    let reg = Registration::new();
    let parent = reg.holder(table, Identity::current, os_probe);
    assert_ne!(parent, 0);

    // SAFETY: fork in a threaded test process; the child only registers
    // (glibc's malloc is fork-safe), stores to the shared mapping and
    // leaves with _exit, running no destructor and no test harness code.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork: {}", std::io::Error::last_os_error());
    if child == 0 {
        let ok = std::panic::catch_unwind(|| {
            let h = reg.holder(table, Identity::current, os_probe);
            out[0].store(u64::from(h), SeqCst);
            out[1].store(u64::from(Identity::current().pid), SeqCst);
        })
        .is_ok();
        // SAFETY: ends the child without unwinding into the harness.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child; `status` is a valid out pointer.
        let rc = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) };
        if rc == child {
            break;
        }
        if std::time::Instant::now() > deadline {
            // SAFETY: our own child, still unreaped, so the pid is its.
            unsafe {
                libc::kill(child, libc::SIGKILL);
                libc::waitpid(child, &mut status, 0);
            }
            panic!("the child did not finish within 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child status {status:#x}"
    );
    let h = out[0].load(SeqCst) as u32;
    assert_eq!(
        out[1].load(SeqCst),
        child as u64,
        "the child's identity is its own"
    );
    assert_ne!(h, 0);
    assert_ne!(h, parent, "the child registered anew");
    assert_eq!(
        reg.holder(table, Identity::current, os_probe),
        parent,
        "the parent keeps its own"
    );

    let me = Identity::current();
    let cache = VerdictCache::new(ENTRIES);
    if me.start != 0 {
        assert_eq!(
            verdict(table, h, &me, os_probe, now_ms(), &cache),
            Verdict::Dead
        );
        assert_eq!(
            verdict(table, parent, &me, os_probe, now_ms(), &cache),
            Verdict::Alive
        );
    }
    assert!(reg.release(table));
    // SAFETY: `words` is not used after this; the range is the mapping.
    unsafe { libc::munmap(p, len) };
}
