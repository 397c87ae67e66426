use super::*;

fn set(ids: &[BrokerId]) -> BTreeSet<BrokerId> {
    ids.iter().copied().collect()
}

fn proposal(ids: &[BrokerId], based_on_epoch: u32) -> SyncStateProposal {
    SyncStateProposal {
        new_set: set(ids),
        based_on_epoch,
    }
}

#[test]
fn a_slave_is_counted_before_it_is_proposed_and_proposed_once_it_holds_everything() {
    let mut upkeep = SyncStateUpkeep::new(1, &set(&[1]), 1);
    assert_eq!(upkeep.next(&set(&[2]), &set(&[])), None, "not ready yet");
    assert_eq!(upkeep.counted(), set(&[1, 2]), "counted while joining");
    let grow = upkeep.next(&set(&[2]), &set(&[2])).unwrap();
    assert_eq!(grow, proposal(&[1, 2], 1));
    upkeep.answered(&grow, ProposalAnswer::Accepted { epoch: 2 });
    assert_eq!(upkeep.approved(), (&set(&[1, 2]), 2));
    assert_eq!(upkeep.pending(), None);
    assert_eq!(upkeep.next(&set(&[2]), &set(&[2])), None);
}

#[test]
fn a_joining_slave_that_falls_behind_leaves_the_count_before_any_proposal() {
    let mut upkeep = SyncStateUpkeep::new(1, &set(&[1]), 1);
    assert_eq!(upkeep.next(&set(&[2]), &set(&[])), None);
    assert_eq!(upkeep.next(&set(&[]), &set(&[])), None);
    assert_eq!(upkeep.counted(), set(&[1]));
}

#[test]
fn a_shrink_counts_the_member_until_the_controller_approved_it() {
    let mut upkeep = SyncStateUpkeep::new(1, &set(&[1, 2]), 3);
    let shrink = upkeep.next(&set(&[]), &set(&[])).unwrap();
    assert_eq!(shrink.new_set, set(&[1]));
    upkeep.answered(&shrink, ProposalAnswer::Unknown);
    assert_eq!(upkeep.counted(), set(&[1, 2]), "the answer was lost");
    assert_eq!(
        upkeep.next(&set(&[]), &set(&[])),
        Some(shrink.clone()),
        "re-sent"
    );
    upkeep.answered(&shrink, ProposalAnswer::Accepted { epoch: 4 });
    assert_eq!(upkeep.counted(), set(&[1]));
}

/// A lost expansion's member must keep counting even when the next check would propose
/// a set without it: the controller can still apply the lost one (and then elect that
/// member, lacking what was acknowledged without it).
#[test]
fn a_lost_expansion_counts_until_resolved_even_when_its_member_falls_behind() {
    let mut upkeep = SyncStateUpkeep::new(1, &set(&[1]), 1);
    upkeep.next(&set(&[2]), &set(&[]));
    let grow = upkeep.next(&set(&[2]), &set(&[2])).unwrap();
    upkeep.answered(&grow, ProposalAnswer::Unknown);
    // 2 falls behind: nothing new is proposed, the lost one is re-sent and still counts.
    assert_eq!(upkeep.next(&set(&[]), &set(&[])), Some(grow.clone()));
    assert_eq!(upkeep.counted(), set(&[1, 2]));
    // The controller refuses the re-sent copy (2 is not alive), but the lost copy may still
    // reach it once 2 is alive again: the proposal keeps counting and is re-sent.
    upkeep.answered(&grow, ProposalAnswer::Refused);
    assert_eq!(upkeep.counted(), set(&[1, 2]));
    assert_eq!(upkeep.next(&set(&[]), &set(&[])), Some(grow.clone()));
    // Applied at last (or a newer set learnt): resolved.
    upkeep.answered(&grow, ProposalAnswer::Accepted { epoch: 2 });
    assert_eq!(upkeep.approved(), (&set(&[1, 2]), 2));
    assert_eq!(upkeep.pending(), None);
}

#[test]
fn a_refusal_resolves_a_proposal_none_of_whose_copies_was_lost() {
    let mut upkeep = SyncStateUpkeep::new(1, &set(&[1]), 1);
    upkeep.next(&set(&[2]), &set(&[]));
    let grow = upkeep.next(&set(&[2]), &set(&[2])).unwrap();
    // The controller refuses it in its log (2 is not alive): no copy can apply.
    upkeep.answered(&grow, ProposalAnswer::Refused);
    assert_eq!(upkeep.pending(), None);
    assert_eq!(upkeep.next(&set(&[]), &set(&[])), None);
    assert_eq!(upkeep.counted(), set(&[1]));
}

#[test]
fn a_moved_epoch_resolves_the_pending_proposal_only_through_the_learnt_set() {
    let mut upkeep = SyncStateUpkeep::new(1, &set(&[1]), 1);
    upkeep.next(&set(&[2]), &set(&[]));
    let grow = upkeep.next(&set(&[2]), &set(&[2])).unwrap();
    // A copy was applied, its answer lost; the resend finds the epoch moved.
    let fenced = ProposalAnswer::from_refusal(Some(RefusalCode::FencedSyncStateSetEpoch));
    upkeep.answered(&grow, fenced);
    assert_eq!(
        upkeep.counted(),
        set(&[1, 2]),
        "unknown until the set is learnt"
    );
    assert!(!upkeep.learn(&set(&[1]), 1), "stale news changes nothing");
    assert_eq!(upkeep.counted(), set(&[1, 2]));
    assert!(!upkeep.learn(&set(&[2]), 2), "a set without the master");
    assert!(upkeep.learn(&set(&[1, 2]), 2));
    assert_eq!(upkeep.approved(), (&set(&[1, 2]), 2));
    assert_eq!(upkeep.pending(), None);
}

#[test]
fn a_refusal_of_another_proposal_leaves_the_pending_one() {
    let mut upkeep = SyncStateUpkeep::new(1, &set(&[1, 2]), 3);
    let shrink = upkeep.next(&set(&[]), &set(&[])).unwrap();
    upkeep.answered(&proposal(&[1, 3], 3), ProposalAnswer::Refused);
    assert_eq!(upkeep.pending(), Some(&shrink));
}

#[test]
fn only_refusals_decided_in_the_controllers_log_are_definite() {
    for refused in [
        RefusalCode::BrokerNotAlive,
        RefusalCode::AlterSyncStateSetFailed,
        RefusalCode::InvalidReplicas,
    ] {
        assert_eq!(
            ProposalAnswer::from_refusal(Some(refused)),
            ProposalAnswer::Refused
        );
    }
    for unknown in [
        None,
        Some(RefusalCode::FencedSyncStateSetEpoch),
        Some(RefusalCode::FencedMasterEpoch),
        Some(RefusalCode::InvalidMaster),
    ] {
        assert_eq!(
            ProposalAnswer::from_refusal(unknown),
            ProposalAnswer::Unknown
        );
    }
}

#[test]
fn a_counting_mark_is_the_log_end_when_counting_started_and_is_kept_while_counted() {
    let mut marks: CountingMarks<BrokerId, u64> = CountingMarks::default();
    marks.set_counted(&[2], 100);
    assert!(!marks.holds_everything_acknowledged(2, Some(99)));
    assert!(!marks.holds_everything_acknowledged(2, None));
    assert!(marks.holds_everything_acknowledged(2, Some(100)));
    assert!(
        !marks.holds_everything_acknowledged(3, Some(500)),
        "not counted"
    );
    marks.set_counted(&[2, 3], 150);
    assert_eq!((marks.mark(2), marks.mark(3)), (Some(100), Some(150)));
    marks.set_counted(&[3], 160);
    marks.set_counted(&[2, 3], 170);
    assert_eq!(
        (marks.mark(2), marks.mark(3)),
        (Some(170), Some(150)),
        "counted again from the new end"
    );
    marks.forget();
    assert_eq!(marks.mark(3), None);
}

#[test]
fn wire_codes_name_their_refusals() {
    for code in [2000, 2001, 2002, 2003, 2006, 2008, 2013, 2014] {
        let refusal = RefusalCode::from_response_code(code).expect("a controller refusal");
        assert_eq!(refusal.response_code(), code);
    }
    // Not the leader, a raft error: no refusal of the proposal.
    assert_eq!(RefusalCode::from_response_code(2007), None);
    assert_eq!(RefusalCode::from_response_code(2015), None);
    assert_eq!(RefusalCode::from_response_code(0), None);
}

#[test]
fn a_replica_that_keeps_reaching_where_the_master_was_has_caught_up() {
    let mut catch_up = CatchUp::<u64, u64>::default();
    assert!(
        !catch_up.report(0, 100, 10),
        "first report: behind the end now"
    );
    assert_eq!(catch_up.caught_up_at(), None);
    // Steady load: the master is always ahead; the replica reaches its previous end.
    assert!(
        !catch_up.report(80, 200, 20),
        "80 is below the previous end 100"
    );
    assert!(
        catch_up.report(200, 300, 30),
        "reached the previous end 200"
    );
    assert_eq!(catch_up.caught_up_at(), Some(30));
    // A later miss keeps the last catch-up time.
    assert!(!catch_up.report(250, 400, 40));
    assert_eq!(catch_up.caught_up_at(), Some(30));
    // The master's end shrank (a truncation): the smaller end is the target.
    assert!(catch_up.report(350, 350, 50));
}

#[test]
fn a_first_report_at_the_master_end_has_caught_up() {
    let mut catch_up = CatchUp::<u64, u64>::default();
    assert!(catch_up.report(100, 100, 7));
    assert_eq!(catch_up.caught_up_at(), Some(7));
}

#[test]
fn a_replica_falling_further_behind_never_catches_up() {
    let mut catch_up = CatchUp::<u64, u64>::default();
    for (step, (held, end)) in [(0, 300), (100, 400), (200, 500), (300, 600)]
        .into_iter()
        .enumerate()
    {
        assert!(!catch_up.report(held, end, step as u64), "step {step}");
    }
    assert!(!catch_up.is_near(4, 1_000));
}

#[test]
fn a_replica_is_near_within_the_catch_up_limit() {
    let mut catch_up = CatchUp::<u64, u64>::default();
    assert!(!catch_up.is_near(0, 600), "never caught up");
    catch_up.report(100, 100, 1_000);
    assert!(catch_up.is_near(1_000, 600));
    assert!(catch_up.is_near(1_599, 600));
    assert!(!catch_up.is_near(1_600, 600), "600 ms without catching up");
    assert!(catch_up.is_near(900, 600), "a clock read before the report");
}
