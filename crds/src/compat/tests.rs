use serde_json::json;

use super::*;

const ALL: &[Provider] = &[Provider::OpenAi, Provider::Anthropic, Provider::Gemini];

#[test]
fn openai_and_anthropic_refuse_dots_and_more_than_64_characters() {
    for provider in [Provider::OpenAi, Provider::Anthropic] {
        assert_eq!(name_problem("github_create_issue", &[provider]), None);
        assert_eq!(name_problem(&"a".repeat(64), &[provider]), None);
        let long = name_problem(&"a".repeat(65), &[provider]).expect("65 characters break the rule");
        assert!(long.contains(provider.as_str()) && long.contains("65 characters"), "{long}");
        assert!(name_problem("github.create", &[provider]).is_some());
        assert!(name_problem("", &[provider]).is_some());
        assert_eq!(name_problem("9lives-tool", &[provider]), None);
    }
}

#[test]
fn gemini_allows_dots_and_colons_up_to_64_but_wants_a_letter_or_underscore_first() {
    let gemini = &[Provider::Gemini];
    assert_eq!(name_problem("github.create:issue-2", gemini), None);
    assert_eq!(name_problem(&format!("a{}", "b".repeat(63)), gemini), None);
    assert!(name_problem(&format!("a{}", "b".repeat(64)), gemini).is_some());
    let digit = name_problem("9lives", gemini).expect("a leading digit breaks Gemini's rule");
    assert!(digit.contains("gemini") && !digit.contains("openai"), "{digit}");
    assert!(name_problem("-tool", gemini).is_some());
    assert!(name_problem("tool name", gemini).is_some());
}

#[test]
fn a_problem_names_every_provider_that_refuses_the_name_once() {
    let problem =
        name_problem("github.create", &[Provider::OpenAi, Provider::Gemini, Provider::Anthropic, Provider::OpenAi])
            .expect("a dot breaks OpenAI's and Anthropic's rules");
    assert!(problem.contains("openai requires") && problem.contains("anthropic requires"), "{problem}");
    assert!(!problem.contains("gemini"), "gemini accepts dots: {problem}");
    assert_eq!(problem.matches("openai requires").count(), 1, "{problem}");
    assert_eq!(name_problem("anything goes", &[]), None);
}

#[test]
fn the_short_form_is_exactly_the_documented_rule() {
    let name = "github.create_issue";
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    assert_eq!(short_name(name), format!("github_create_issue_{}", &digest[..8]));

    let long = format!("{}.{}", "x".repeat(60), "tail");
    let digest = hex::encode(Sha256::digest(long.as_bytes()));
    assert_eq!(short_name(&long), format!("{}_{}", "x".repeat(55), &digest[..8]));
    assert_eq!(short_name(&long).len(), 64);

    let digit = "1password.lookup";
    let digest = hex::encode(Sha256::digest(digit.as_bytes()));
    assert_eq!(short_name(digit), format!("_1password_lookup_{}", &digest[..8]));
    assert!(short_name("-x").starts_with("_-x_"));
    // Non-ASCII characters become one `_` each, whatever their UTF-8 length.
    assert!(short_name("café ☕").starts_with("caf___"));
}

#[test]
fn the_short_form_passes_every_provider_and_is_deterministic() {
    for name in ["a.b", "9.9", "-", "", "é", &"ü".repeat(200), "mcp:server/tool name", &"a.".repeat(64)] {
        let short = short_name(name);
        assert_eq!(name_problem(&short, ALL), None, "{name:?} → {short:?}");
        assert_eq!(short, short_name(name), "the same name gives the same form");
        assert!(short.len() <= 64);
    }
}

#[test]
fn distinct_names_stay_distinct_even_when_their_stems_agree() {
    let names = ["a.b", "a:b", "a b", "a/b", "a_b"];
    let shorts: BTreeSet<String> = names.iter().map(|name| short_name(name)).collect();
    assert_eq!(shorts.len(), names.len(), "{shorts:?}");
    let long_a = format!("{}.one", "p".repeat(60));
    let long_b = format!("{}.two", "p".repeat(60));
    assert_ne!(short_name(&long_a), short_name(&long_b));
}

#[test]
fn a_schema_every_provider_accepts_is_left_alone() {
    let schema = json!({
        "type": "object",
        "properties": {"city": {"type": "string", "description": "where"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city"]
    });
    assert_eq!(normalize(&schema, ALL), None);
    let strict_for_openai =
        json!({"type": "object", "properties": {"q": {"type": "string"}}, "additionalProperties": false});
    assert_eq!(normalize(&strict_for_openai, &[Provider::OpenAi, Provider::Anthropic]), None);
}

#[test]
fn the_root_becomes_an_object_with_properties_for_every_provider() {
    for provider in ALL {
        let bare = normalize(&json!({"type": "object"}), &[*provider]).expect("properties are added");
        assert_eq!(bare.schema, json!({"type": "object", "properties": {}}));
        assert!(bare.lost.is_empty(), "adding properties loses nothing: {:?}", bare.lost);
    }
    let empty = normalize(&json!({}), &[Provider::OpenAi]).expect("type is added");
    assert_eq!(empty.schema, json!({"type": "object", "properties": {}}));
    let string = normalize(&json!({"type": "string"}), &[Provider::OpenAi]).expect("the root is replaced");
    assert_eq!(string.schema["type"], "object");
    assert_eq!(string.lost, vec!["`$`: type \"string\" replaced by object".to_owned()]);
    let boolean = normalize(&json!(true), &[Provider::Anthropic]).expect("a boolean root is replaced");
    assert_eq!(boolean.schema, json!({"type": "object", "properties": {}}));
    assert_eq!(boolean.lost.len(), 1);
}

#[test]
fn gemini_gets_refs_inlined_from_defs_and_draft_07_definitions() {
    let schema = json!({
        "type": "object",
        "properties": {
            "owner": {"$ref": "#/$defs/Person", "description": "who owns it"},
            "legacy": {"$ref": "#/definitions/Tag"}
        },
        "$defs": {"Person": {"type": "object", "properties": {"name": {"type": "string"}}, "description": "a person"}},
        "definitions": {"Tag": {"type": "string", "enum": ["a", "b"]}}
    });
    let normalized = normalize(&schema, &[Provider::Gemini]).expect("refs are inlined");
    assert_eq!(
        normalized.schema,
        json!({
            "type": "object",
            "properties": {
                "owner": {"type": "object", "properties": {"name": {"type": "string"}}, "description": "who owns it"},
                "legacy": {"type": "string", "enum": ["a", "b"]}
            }
        })
    );
    assert!(normalized.lost.is_empty(), "inlining loses nothing: {:?}", normalized.lost);
    // OpenAI and Anthropic take $ref as it is.
    assert_eq!(normalize(&schema, &[Provider::OpenAi]), None);
}

#[test]
fn a_recursive_ref_is_cut_at_depth_8_with_a_note() {
    let schema = json!({
        "type": "object",
        "properties": {"root": {"$ref": "#/$defs/Node"}},
        "$defs": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}}
    });
    let normalized = normalize(&schema, &[Provider::Gemini]).expect("refs are inlined");
    let mut node = &normalized.schema["properties"]["root"];
    let mut levels = 0;
    while let Some(child) = node.get("properties").and_then(|p| p.get("child")) {
        node = child;
        levels += 1;
    }
    // Eight references are inlined (the root's and seven children); the ninth is cut to `{}`.
    assert_eq!(levels, MAX_REF_DEPTH, "{}", normalized.schema);
    assert_eq!(*node, json!({}));
    assert_eq!(normalized.lost.len(), 1, "{:?}", normalized.lost);
    assert!(normalized.lost[0].contains("recursive $ref `#/$defs/Node` cut at depth 8"), "{:?}", normalized.lost);
    let dangling =
        normalize(&json!({"type": "object", "properties": {"x": {"$ref": "#/$defs/Missing"}}}), &[Provider::Gemini])
            .expect("a dangling ref is dropped");
    assert_eq!(
        dangling.lost,
        vec!["`$.properties.x`: $ref `#/$defs/Missing` could not be inlined, dropped".to_owned()]
    );
}

#[test]
fn gemini_loses_additional_properties_with_a_note_of_what_the_gateway_does() {
    let schema = json!({
        "type": "object",
        "properties": {"x": {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}}},
        "additionalProperties": false
    });
    let normalized = normalize(&schema, &[Provider::Gemini]).expect("additionalProperties go");
    assert_eq!(normalized.schema, json!({"type": "object", "properties": {"x": {"type": "object", "properties": {}}}}));
    assert_eq!(
        normalized.lost,
        vec![
            "`$`: additionalProperties dropped (undeclared properties are removed before the call)".to_owned(),
            "`$.properties.x`: additionalProperties dropped".to_owned(),
        ]
    );
}

#[test]
fn gemini_gets_const_as_enum_one_of_as_any_of_and_nullable_types() {
    let schema = json!({
        "type": "object",
        "properties": {
            "kind": {"const": "issue"},
            "target": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            "note": {"type": ["string", "null"]},
            "either": {"type": ["string", "integer"]}
        }
    });
    let normalized = normalize(&schema, &[Provider::Gemini]).expect("rewritten");
    assert_eq!(normalized.schema["properties"]["kind"], json!({"enum": ["issue"]}));
    assert_eq!(normalized.schema["properties"]["target"], json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}));
    assert_eq!(normalized.schema["properties"]["note"], json!({"type": "string", "nullable": true}));
    assert_eq!(normalized.schema["properties"]["either"], json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}));
    assert!(normalized.lost.contains(&"`$.properties.target`: oneOf made anyOf (more than one may match)".to_owned()));
    assert!(normalized.lost.contains(&"`$.properties.either`: type list made anyOf".to_owned()));
    assert!(
        !normalized.lost.iter().any(|loss| loss.contains("note") || loss.contains("kind")),
        "{:?}",
        normalized.lost
    );
}

#[test]
fn gemini_gets_non_string_enums_as_strings_and_unknown_keywords_removed() {
    let schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "level": {"type": "integer", "enum": [1, 2, 3]},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
            "ratio": {"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.5}
        },
        "required": ["level"]
    });
    let normalized = normalize(&schema, &[Provider::Gemini]).expect("rewritten");
    assert_eq!(
        normalized.schema,
        json!({
            "type": "object",
            "properties": {
                "level": {"type": "string", "enum": ["1", "2", "3"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "ratio": {"type": "number"}
            },
            "required": ["level"]
        })
    );
    let mut lost = normalized.lost.clone();
    lost.sort();
    assert_eq!(
        lost,
        vec![
            "`$.properties.level`: enum values made strings".to_owned(),
            "`$.properties.ratio`: exclusiveMinimum dropped".to_owned(),
            "`$.properties.ratio`: multipleOf dropped".to_owned(),
            "`$.properties.tags`: uniqueItems dropped".to_owned(),
        ]
    );
}

#[test]
fn gemini_gets_all_of_merged() {
    let schema = json!({
        "type": "object",
        "allOf": [
            {"properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"type": "integer"}}, "required": ["b"]}
        ],
        "properties": {"c": {"type": "boolean"}},
        "required": ["c"]
    });
    let normalized = normalize(&schema, &[Provider::Gemini]).expect("merged");
    assert_eq!(
        normalized.schema["properties"],
        json!({"c": {"type": "boolean"}, "a": {"type": "string"}, "b": {"type": "integer"}})
    );
    assert_eq!(normalized.schema["required"], json!(["c", "a", "b"]));
    assert_eq!(normalized.lost, vec!["`$`: allOf merged into one schema".to_owned()]);
}

#[test]
fn losses_are_noted_after_the_description_and_bounded() {
    assert_eq!(describe_losses("Creates an issue.", &[]), "Creates an issue.");
    let one = describe_losses("Creates an issue.", &["`$`: additionalProperties dropped".to_owned()]);
    assert_eq!(
        one,
        "Creates an issue.\n\n(Input schema simplified for this client: `$`: additionalProperties dropped.)"
    );
    assert_eq!(describe_losses("", &["x".to_owned()]), "(Input schema simplified for this client: x.)");
    let many: Vec<String> = (0..20).map(|index| format!("loss {index}")).collect();
    let bounded = describe_losses("d", &many);
    assert!(bounded.contains("loss 7; and 12 more"), "{bounded}");
    assert!(!bounded.contains("loss 8"), "{bounded}");
}

#[test]
fn undeclared_arguments_are_stripped_only_where_additional_properties_was_false() {
    let schema = json!({
        "type": "object",
        "properties": {
            "inner": {"$ref": "#/$defs/Inner"},
            "open": {"type": "object"}
        },
        "additionalProperties": false,
        "$defs": {"Inner": {"type": "object", "properties": {"k": {"type": "string"}}, "additionalProperties": false}}
    });
    let mut arguments = json!({"inner": {"k": "v", "junk": 1}, "open": {"anything": true}, "extra": 2});
    let removed = fit_arguments(&schema, &mut arguments);
    assert_eq!(arguments, json!({"inner": {"k": "v"}, "open": {"anything": true}}));
    assert_eq!(
        removed,
        vec!["$.extra: undeclared, removed".to_owned(), "$.inner.junk: undeclared, removed".to_owned()]
    );
    let mut untouched = json!({"a": 1, "b": [1, 2]});
    assert!(fit_arguments(&json!({"type": "object", "properties": {"a": {}}}), &mut untouched).is_empty());
    assert_eq!(untouched, json!({"a": 1, "b": [1, 2]}));
}

#[test]
fn enum_values_gemini_got_as_strings_reach_the_upstream_as_they_were() {
    let schema = json!({
        "type": "object",
        "properties": {
            "level": {"enum": [1, 2, 3]},
            "flags": {"type": "array", "items": {"enum": [true, "auto"]}},
            "name": {"enum": ["1", "2"]}
        }
    });
    let gemini = normalize(&schema, &[Provider::Gemini]).expect("non-string enums change for Gemini").schema;
    assert_eq!(gemini["properties"]["level"], json!({"type": "string", "enum": ["1", "2", "3"]}));
    let mut arguments = json!({"level": "2", "flags": ["true", "auto"], "name": "1"});
    let changed = fit_arguments(&schema, &mut arguments);
    assert_eq!(arguments, json!({"level": 2, "flags": [true, "auto"], "name": "1"}));
    assert_eq!(changed, ["$.flags[0]: enum value restored", "$.level: enum value restored"]);
}

#[test]
fn a_root_combinator_becomes_one_object_for_openai_and_anthropic() {
    let schema = json!({
        "oneOf": [
            {"type": "object", "properties": {"id": {"type": "string"}, "kind": {"const": "id"}}, "required": ["id", "kind"]},
            {"$ref": "#/$defs/ByName"}
        ],
        "$defs": {"ByName": {"type": "object", "properties": {"name": {"type": "string"}, "kind": {"const": "name"}}, "required": ["name", "kind"]}}
    });
    for providers in [&[Provider::OpenAi][..], &[Provider::Anthropic]] {
        let normalized = normalize(&schema, providers).expect("a root oneOf is refused");
        assert_eq!(normalized.schema["type"], "object");
        assert!(normalized.schema.get("oneOf").is_none(), "{}", normalized.schema);
        let properties = normalized.schema["properties"].as_object().expect("properties");
        assert_eq!(properties.keys().collect::<Vec<_>>(), ["id", "kind", "name"]);
        assert_eq!(normalized.schema["required"], json!(["kind"]), "required only where every option requires it");
        assert_eq!(
            normalized.lost,
            ["`$`: oneOf of 2 schemas made one object offering every property (send one shape's)"]
        );
    }
    let all_of = json!({"allOf": [{"properties": {"a": {}}, "required": ["a"]}, {"properties": {"b": {}}, "required": ["b"]}], "enum": [{}]});
    let normalized = normalize(&all_of, &[Provider::OpenAi]).expect("a root allOf and enum are refused");
    assert_eq!(normalized.schema["required"], json!(["a", "b"]));
    assert_eq!(normalized.lost, ["`$`: allOf of 2 schemas merged into one object", "`$`: enum dropped from the root"]);
}

#[test]
fn gemini_gets_keywords_fitted_to_each_type() {
    let schema = json!({
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date"},
            "ratio": {"type": "number", "format": "float"},
            "tags": {"type": "array"},
            "odd": {"type": "string", "properties": {"x": {}}, "items": {}}
        },
        "required": ["when", "ghost"]
    });
    let normalized = normalize(&schema, &[Provider::Gemini]).expect("Gemini refuses these");
    let properties = &normalized.schema["properties"];
    assert_eq!(properties["when"], json!({"type": "string"}));
    assert_eq!(properties["ratio"], json!({"type": "number", "format": "float"}));
    assert_eq!(properties["tags"], json!({"type": "array", "items": {}}));
    assert_eq!(properties["odd"], json!({"type": "string"}));
    assert_eq!(normalized.schema["required"], json!(["when"]));
    for note in [
        "`$.properties.when`: format date dropped",
        "`$.properties.odd`: properties dropped (not allowed for type string)",
        "`$.properties.odd`: items dropped (not allowed for type string)",
        "`$`: required names of undeclared properties dropped",
    ] {
        assert!(normalized.lost.iter().any(|lost| lost == note), "{note} in {:?}", normalized.lost);
    }
}
