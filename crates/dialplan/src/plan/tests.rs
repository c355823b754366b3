use super::*;

const CS: UriLookupPolicy = UriLookupPolicy::CaseSensitive;

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn trunk(n: &str, css: &str) -> TrunkSpec {
    TrunkSpec {
        name: name(n),
        destinations: vec![Destination::parse("127.0.0.1:5060").unwrap()],
        transport: Transport::Udp,
        accepts: vec![],
        inbound_css: name(css),
        dial_string: DialStringInterpretation::default(),
        add_dest_route_string: false,
        route_on_dest_route_string: false,
        options_ping: OptionsPing::default(),
    }
}

fn local(uri: &str, partition: &str) -> LocalUri {
    LocalUri {
        uri: DirectoryUri::parse(uri, CS).unwrap(),
        partition: name(partition),
        directory_number: DirectoryNumber::new("1001").unwrap(),
        advertise: true,
    }
}

fn base() -> DialPlanBuilder {
    let mut b = DialPlanBuilder::new(CS);
    b.partition(name("P")).unwrap();
    b.css(name("C"), vec![name("P")]).unwrap();
    b.trunk(trunk("T", "C")).unwrap();
    b
}

#[test]
fn references_are_checked_and_errors_name_the_culprit() {
    let mut b = base();
    assert_eq!(
        b.partition(name("P")),
        Err(PlanError::DuplicatePartition { name: name("P") })
    );
    let e = b
        .css(name("C2"), vec![name("P"), name("Nope")])
        .unwrap_err();
    assert_eq!(e.to_string(), "unknown partition \"Nope\"");
    assert!(matches!(
        b.css(name("C2"), vec![name("P"), name("P")]),
        Err(PlanError::RepeatedPartition { .. })
    ));
    assert!(matches!(
        b.css(name("C"), vec![]),
        Err(PlanError::DuplicateCss { .. })
    ));
    assert_eq!(
        b.trunk(trunk("T2", "Missing")).unwrap_err().to_string(),
        "unknown calling search space \"Missing\""
    );
    assert!(matches!(
        b.trunk(trunk("T", "C")),
        Err(PlanError::DuplicateTrunk { .. })
    ));
    let mut empty = trunk("T3", "C");
    empty.destinations.clear();
    assert!(matches!(
        b.trunk(empty),
        Err(PlanError::NoDestinations { .. })
    ));
    let mut many = trunk("T4", "C");
    many.destinations = vec![many.destinations[0].clone(); 17];
    assert!(matches!(
        b.trunk(many),
        Err(PlanError::TooManyDestinations {
            count: 17,
            max: 16,
            ..
        })
    ));
    let p = || SipPattern::parse("hq.route").unwrap();
    assert_eq!(
        b.sip_route_pattern(p(), name("P"), PatternAction::Route { trunk: name("X") })
            .unwrap_err()
            .to_string(),
        "unknown trunk \"X\""
    );
    assert!(matches!(
        b.sip_route_pattern(p(), name("Q"), PatternAction::Route { trunk: name("T") }),
        Err(PlanError::UnknownPartition { .. })
    ));
    b.sip_route_pattern(p(), name("P"), PatternAction::Route { trunk: name("T") })
        .unwrap();
    assert!(matches!(
        b.sip_route_pattern(p(), name("P"), PatternAction::Block { status: 403 }),
        Err(PlanError::DuplicatePattern { .. })
    ));
    assert_eq!(
        b.numeric_route_pattern(
            NumericPattern::parse("1XXX").unwrap(),
            name("P"),
            PatternAction::Block { status: 200 }
        ),
        Err(PlanError::BadBlockStatus { status: 200 })
    );
    assert!(matches!(
        b.default_inbound_css(Some(name("Z"))),
        Err(PlanError::UnknownCss { .. })
    ));
}

#[test]
fn same_uri_twice_in_one_partition_is_refused() {
    let mut b = base();
    b.partition(name("Q")).unwrap();
    b.directory_uri(local("alice@hq.example.com", "P")).unwrap();
    b.directory_uri(local("alice@hq.example.com", "Q")).unwrap();
    let e = b
        .directory_uri(local("alice@HQ.example.com", "P"))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "directory URI alice@hq.example.com appears twice in partition \"P\""
    );
    assert!(matches!(
        b.directory_uri(local("bob@hq.example.com", "R")),
        Err(PlanError::UnknownPartition { .. })
    ));
    let plan = b.build();
    assert_eq!(plan.local_uris().count(), 2);
    assert_eq!(plan.calling_search_space("C").unwrap(), &[name("P")]);
    assert!(plan.trunk("T").is_some());
    assert_eq!(plan.pattern_count(), 0);
}

#[test]
fn case_insensitive_plans_fold_local_uris() {
    let mut b = DialPlanBuilder::new(UriLookupPolicy::CaseInsensitive);
    b.partition(name("P")).unwrap();
    b.directory_uri(local("Alice@hq.example.com", "P")).unwrap();
    assert!(matches!(
        b.directory_uri(local("ALICE@hq.example.com", "P")),
        Err(PlanError::DuplicateUri { .. })
    ));
    let plan = b.build();
    assert_eq!(
        plan.local_uris().next().unwrap().uri.as_str(),
        "alice@hq.example.com"
    );
}
