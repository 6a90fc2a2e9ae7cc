//! A hand-built [`Snapshot`] for tests and benchmarks: the part of
//! `pg_catalog` that typical application queries touch (built-in type OIDs
//! and the volatility markings of PostgreSQL 15), and an application schema
//! in the styles of Django, Rails, Hibernate, Prisma, pgbench, TPC-C and
//! TPC-H, plus one table for each reason a table is not cacheable.
//!
//! The session user of [`fixture_path`] is `app`, and schema `app` exists,
//! so `"$user", public` searches `app` then `public`.

use super::*;

/// OIDs handed to fixture objects that have no fixed OID.
struct Oids(u32);

impl Oids {
    fn next(&mut self) -> Oid {
        self.0 += 1;
        Oid(self.0)
    }
}

pub const PUBLIC: Oid = Oid(2200);
pub const INFORMATION_SCHEMA: Oid = Oid(13_000);
pub const APP: Oid = Oid(16_400);
pub const TPCC: Oid = Oid(16_401);
pub const TPCH: Oid = Oid(16_402);
pub const REPORTING: Oid = Oid(16_403);
/// The publication of the fixture.
pub const PUBLICATION: &str = "pgcache_pub";

const ROLE_ENUM: Oid = Oid(16_500);
const EMAIL_DOMAIN: Oid = Oid(16_501);
const REGCLASS: Oid = Oid(2205);

use Volatility::{Immutable as I, Stable as S, Volatile as V};

fn ty(oid: u32, name: &str, category: u8, array: u32, volatility: Volatility) -> Type {
    Type {
        oid: Oid(oid),
        schema: oids::PG_CATALOG,
        name: name.to_owned(),
        kind: TypeKind::Base,
        category,
        preferred: matches!(
            name,
            "text" | "float8" | "timestamptz" | "bool" | "interval" | "oid"
        ),
        element: None,
        array: (array != 0).then_some(Oid(array)),
        base: None,
        input_function: format!("{name}in"),
        input_volatility: volatility,
        output_volatility: volatility,
        enum_labels: Vec::new(),
    }
}

fn array_ty(oid: u32, name: &str, element: u32) -> Type {
    Type {
        oid: Oid(oid),
        schema: oids::PG_CATALOG,
        name: format!("_{name}"),
        kind: TypeKind::Base,
        category: b'A',
        preferred: false,
        element: Some(Oid(element)),
        array: None,
        base: None,
        input_function: "array_in".to_owned(),
        input_volatility: S,
        output_volatility: S,
        enum_labels: Vec::new(),
    }
}

fn type_oid(name: &str) -> Oid {
    match name {
        "bool" => oids::BOOL,
        "bytea" => oids::BYTEA,
        "name" => oids::NAME,
        "int8" => oids::INT8,
        "int2" => oids::INT2,
        "int4" => oids::INT4,
        "text" => oids::TEXT,
        "oid" => oids::OID,
        "json" => oids::JSON,
        "float4" => oids::FLOAT4,
        "float8" => oids::FLOAT8,
        "bpchar" => oids::BPCHAR,
        "varchar" => oids::VARCHAR,
        "date" => oids::DATE,
        "time" => oids::TIME,
        "timestamp" => oids::TIMESTAMP,
        "timestamptz" => oids::TIMESTAMPTZ,
        "interval" => oids::INTERVAL,
        "numeric" => oids::NUMERIC,
        "uuid" => oids::UUID,
        "jsonb" => oids::JSONB,
        "bit" => oids::BIT,
        "varbit" => oids::VARBIT,
        "regclass" => REGCLASS,
        "any" => oids::ANY,
        "anyelement" => oids::ANYELEMENT,
        "anyarray" => oids::ANYARRAY,
        "anynonarray" => oids::ANYNONARRAY,
        "anyenum" => oids::ANYENUM,
        "anycompatible" => oids::ANYCOMPATIBLE,
        "anycompatiblearray" => oids::ANYCOMPATIBLEARRAY,
        "record" => oids::RECORD,
        "Role" => ROLE_ENUM,
        "email" => EMAIL_DOMAIN,
        "text[]" => Oid(1009),
        "int4[]" => Oid(1007),
        "int8[]" => Oid(1016),
        "varchar[]" => Oid(1015),
        "uuid[]" => Oid(2951),
        "timestamptz[]" => Oid(1185),
        _ => oids::UNKNOWN,
    }
}

fn types(b: &mut SnapshotBuilder) {
    let base = [
        (16, "bool", b'B', 1000, I),
        (17, "bytea", b'U', 1001, I),
        (19, "name", b'S', 1003, I),
        (20, "int8", b'N', 1016, I),
        (21, "int2", b'N', 1005, I),
        (23, "int4", b'N', 1007, I),
        (25, "text", b'S', 1009, I),
        (26, "oid", b'N', 1028, I),
        (114, "json", b'U', 199, I),
        (700, "float4", b'N', 1021, I),
        (701, "float8", b'N', 1022, I),
        (705, "unknown", b'X', 0, I),
        (1042, "bpchar", b'S', 1014, I),
        (1043, "varchar", b'S', 1015, I),
        (1082, "date", b'D', 1182, S),
        (1083, "time", b'D', 1183, S),
        (1114, "timestamp", b'D', 1115, S),
        (1184, "timestamptz", b'D', 1185, S),
        (1186, "interval", b'T', 1187, S),
        (1560, "bit", b'V', 1561, I),
        (1562, "varbit", b'V', 1563, I),
        (1700, "numeric", b'N', 1231, I),
        (2950, "uuid", b'U', 2951, I),
        (3802, "jsonb", b'U', 3807, I),
        (2205, "regclass", b'N', 2210, S),
    ];
    for (oid, name, cat, arr, vol) in base {
        b.type_(ty(oid, name, cat, arr, vol));
        if arr != 0 {
            b.type_(array_ty(arr, name, oid));
        }
    }
    for (oid, name) in [
        (2276, "any"),
        (2283, "anyelement"),
        (2277, "anyarray"),
        (2776, "anynonarray"),
        (3500, "anyenum"),
        (3831, "anyrange"),
        (5077, "anycompatible"),
        (5078, "anycompatiblearray"),
        (2249, "record"),
    ] {
        let mut t = ty(oid, name, b'P', 0, I);
        t.kind = TypeKind::Pseudo;
        b.type_(t);
    }
    let mut role = ty(ROLE_ENUM.0, "Role", b'E', 16_502, S);
    role.schema = PUBLIC;
    role.kind = TypeKind::Enum;
    role.input_function = "enum_in".to_owned();
    role.enum_labels = vec!["USER".to_owned(), "ADMIN".to_owned()];
    b.type_(role);
    let mut email = ty(EMAIL_DOMAIN.0, "email", b'S', 0, S);
    email.schema = PUBLIC;
    email.kind = TypeKind::Domain;
    email.base = Some(oids::TEXT);
    email.input_function = "domain_in".to_owned();
    b.type_(email);
}

fn casts(b: &mut SnapshotBuilder) {
    use CastContext::{Assignment as A, Explicit as E, Implicit as Imp};
    let list: &[(&str, &str, CastContext, Volatility)] = &[
        ("int2", "int4", Imp, I),
        ("int2", "int8", Imp, I),
        ("int2", "float4", Imp, I),
        ("int2", "float8", Imp, I),
        ("int2", "numeric", Imp, I),
        ("int4", "int8", Imp, I),
        ("int4", "float4", Imp, I),
        ("int4", "float8", Imp, I),
        ("int4", "numeric", Imp, I),
        ("int4", "int2", A, I),
        ("int4", "bool", E, I),
        ("int8", "float4", Imp, I),
        ("int8", "float8", Imp, I),
        ("int8", "numeric", Imp, I),
        ("int8", "int4", A, I),
        ("int8", "int2", A, I),
        ("numeric", "float4", Imp, I),
        ("numeric", "float8", Imp, I),
        ("numeric", "int4", A, I),
        ("numeric", "int8", A, I),
        ("float4", "float8", Imp, I),
        ("float8", "numeric", A, I),
        ("float8", "int4", A, I),
        ("varchar", "text", Imp, I),
        ("bpchar", "text", Imp, I),
        ("text", "varchar", Imp, I),
        ("text", "bpchar", Imp, I),
        ("varchar", "bpchar", Imp, I),
        ("bpchar", "varchar", Imp, I),
        ("name", "text", Imp, I),
        ("text", "name", Imp, I),
        ("varchar", "name", Imp, I),
        ("date", "timestamp", Imp, I),
        ("date", "timestamptz", Imp, S),
        ("timestamp", "timestamptz", Imp, S),
        ("timestamptz", "timestamp", A, S),
        ("timestamptz", "date", A, S),
        ("timestamp", "date", A, I),
        ("json", "jsonb", E, S),
        ("jsonb", "json", E, S),
        ("text", "regclass", Imp, S),
        ("int4", "oid", Imp, I),
        ("int8", "oid", Imp, I),
        ("oid", "regclass", Imp, I),
    ];
    for (from, to, context, volatility) in list {
        b.cast(Cast {
            source: type_oid(from),
            target: type_oid(to),
            context: *context,
            volatility: *volatility,
        });
    }
}

fn operators(b: &mut SnapshotBuilder, ids: &mut Oids) {
    let mut op =
        |name: &str, left: Option<&str>, right: &str, result: &str, volatility: Volatility| {
            let oid = ids.next();
            b.operator(Operator {
                oid,
                schema: oids::PG_CATALOG,
                name: name.to_owned(),
                left: left.map(type_oid),
                right: type_oid(right),
                result: type_oid(result),
                function: Oid(oid.0 + 1_000_000),
                volatility,
            });
        };
    let cmp = ["=", "<>", "<", "<=", ">", ">="];
    let ordered = [
        "int2",
        "int4",
        "int8",
        "float4",
        "float8",
        "numeric",
        "text",
        "bpchar",
        "name",
        "date",
        "time",
        "timestamp",
        "timestamptz",
        "interval",
        "uuid",
        "bytea",
        "oid",
        "bool",
        "jsonb",
        "anyenum",
        "anyarray",
        "bit",
        "varbit",
    ];
    for t in ordered {
        for c in cmp {
            op(c, Some(t), t, "bool", I);
        }
    }
    // Cross-type comparisons; timestamp/timestamptz mixes are stable (TimeZone).
    let cross: &[(&str, &str, Volatility)] = &[
        ("int2", "int4", I),
        ("int4", "int2", I),
        ("int2", "int8", I),
        ("int8", "int2", I),
        ("int4", "int8", I),
        ("int8", "int4", I),
        ("float4", "float8", I),
        ("float8", "float4", I),
        ("date", "timestamp", I),
        ("timestamp", "date", I),
        ("date", "timestamptz", S),
        ("timestamptz", "date", S),
        ("timestamp", "timestamptz", S),
        ("timestamptz", "timestamp", S),
    ];
    for (l, r, v) in cross {
        for c in cmp {
            op(c, Some(l), r, "bool", *v);
        }
    }
    for t in ["int2", "int4", "int8", "float4", "float8", "numeric"] {
        for a in ["+", "-", "*", "/"] {
            op(a, Some(t), t, t, I);
        }
        op("-", None, t, t, I);
    }
    for (l, r, res) in [("int4", "int8", "int8"), ("int8", "int4", "int8")] {
        for a in ["+", "-", "*", "/"] {
            op(a, Some(l), r, res, I);
        }
    }
    for t in ["int2", "int4", "int8", "numeric"] {
        op("%", Some(t), t, t, I);
    }
    op("||", Some("text"), "text", "text", I);
    op("||", Some("anynonarray"), "text", "text", S);
    op("||", Some("text"), "anynonarray", "text", S);
    op(
        "||",
        Some("anycompatiblearray"),
        "anycompatiblearray",
        "anycompatiblearray",
        I,
    );
    for t in ["text", "bpchar", "name"] {
        for l in ["~~", "!~~", "~~*", "!~~*", "~", "!~", "~*", "!~*"] {
            op(l, Some(t), "text", "bool", I);
        }
    }
    op("+", Some("date"), "int4", "date", I);
    op("-", Some("date"), "int4", "date", I);
    op("-", Some("date"), "date", "int4", I);
    op("+", Some("date"), "interval", "timestamp", I);
    op("-", Some("date"), "interval", "timestamp", I);
    op("+", Some("timestamp"), "interval", "timestamp", I);
    op("-", Some("timestamp"), "interval", "timestamp", I);
    op("+", Some("timestamptz"), "interval", "timestamptz", S);
    op("-", Some("timestamptz"), "interval", "timestamptz", S);
    op("-", Some("timestamp"), "timestamp", "interval", I);
    op("-", Some("timestamptz"), "timestamptz", "interval", I);
    op("->", Some("jsonb"), "text", "jsonb", I);
    op("->>", Some("jsonb"), "text", "text", I);
    op("->", Some("jsonb"), "int4", "jsonb", I);
    op("->>", Some("jsonb"), "int4", "text", I);
    op("@>", Some("jsonb"), "jsonb", "bool", I);
    op("?", Some("jsonb"), "text", "bool", I);
    op("->>", Some("json"), "text", "text", I);
    op("@>", Some("anyarray"), "anyarray", "bool", I);
    op("<@", Some("anyarray"), "anyarray", "bool", I);
    op("&&", Some("anyarray"), "anyarray", "bool", I);
    op("&", Some("int4"), "int4", "int4", I);
    op("|", Some("int4"), "int4", "int4", I);
}

struct Fn<'a> {
    schema: Oid,
    name: &'a str,
    args: &'a [&'a str],
    result: &'a str,
    volatility: Volatility,
    kind: FunctionKind,
    set: bool,
    variadic: Option<&'a str>,
}

fn functions(b: &mut SnapshotBuilder, ids: &mut Oids) {
    let pc = oids::PG_CATALOG;
    let f = |name, args, result, volatility| Fn {
        schema: pc,
        name,
        args,
        result,
        volatility,
        kind: FunctionKind::Function,
        set: false,
        variadic: None,
    };
    let agg = |name, args, result| Fn {
        kind: FunctionKind::Aggregate,
        ..f(name, args, result, I)
    };
    let mut list = vec![
        f("lower", &["text"], "text", I),
        f("upper", &["text"], "text", I),
        f("lower", &["anyrange"], "anyelement", I),
        f("length", &["text"], "int4", I),
        f("length", &["bytea"], "int4", I),
        f("char_length", &["text"], "int4", I),
        f("btrim", &["text"], "text", I),
        f("ltrim", &["text"], "text", I),
        f("rtrim", &["text"], "text", I),
        f("substr", &["text", "int4", "int4"], "text", I),
        f("substring", &["text", "int4", "int4"], "text", I),
        f("substring", &["text", "int4"], "text", I),
        f("replace", &["text", "text", "text"], "text", I),
        f("md5", &["text"], "text", I),
        f("like_escape", &["text", "text"], "text", I),
        f("similar_to_escape", &["text"], "text", I),
        f("similar_to_escape", &["text", "text"], "text", I),
        f("format_type", &["oid", "int4"], "text", S),
        f("position", &["text", "text"], "int4", I),
        f("strpos", &["text", "text"], "int4", I),
        f("left", &["text", "int4"], "text", I),
        f("abs", &["int4"], "int4", I),
        f("abs", &["int8"], "int8", I),
        f("abs", &["numeric"], "numeric", I),
        f("abs", &["float8"], "float8", I),
        f("round", &["numeric", "int4"], "numeric", I),
        f("round", &["numeric"], "numeric", I),
        f("round", &["float8"], "float8", I),
        f("floor", &["numeric"], "numeric", I),
        f("floor", &["float8"], "float8", I),
        f("ceil", &["numeric"], "numeric", I),
        f("mod", &["int4", "int4"], "int4", I),
        f("mod", &["int8", "int8"], "int8", I),
        f("date_trunc", &["text", "timestamp"], "timestamp", I),
        f("date_trunc", &["text", "timestamptz"], "timestamptz", S),
        f("date_trunc", &["text", "interval"], "interval", I),
        f("date_part", &["text", "timestamp"], "float8", I),
        f("date_part", &["text", "timestamptz"], "float8", S),
        f("date_part", &["text", "date"], "float8", I),
        f("extract", &["text", "timestamp"], "numeric", I),
        f("extract", &["text", "timestamptz"], "numeric", S),
        f("extract", &["text", "date"], "numeric", I),
        f("now", &[], "timestamptz", S),
        f("statement_timestamp", &[], "timestamptz", S),
        f("transaction_timestamp", &[], "timestamptz", S),
        f("clock_timestamp", &[], "timestamptz", V),
        f("timeofday", &[], "text", V),
        f("random", &[], "float8", V),
        f("setseed", &["float8"], "void", V),
        f("nextval", &["regclass"], "int8", V),
        f("currval", &["regclass"], "int8", V),
        f("current_user", &[], "name", S),
        f("session_user", &[], "name", S),
        f("current_role", &[], "name", S),
        f("current_schema", &[], "name", S),
        f("current_database", &[], "name", S),
        f("current_setting", &["text"], "text", S),
        f("set_config", &["text", "text", "bool"], "text", V),
        f("version", &[], "text", S),
        f("pg_backend_pid", &[], "int4", S),
        f("pg_sleep", &["float8"], "void", V),
        f("txid_current", &[], "int8", S),
        f("gen_random_uuid", &[], "uuid", V),
        f("age", &["timestamp"], "interval", S),
        f("age", &["timestamp", "timestamp"], "interval", I),
        f("to_char", &["timestamptz", "text"], "text", S),
        f("to_char", &["timestamp", "text"], "text", S),
        f("to_char", &["numeric", "text"], "text", S),
        f("to_timestamp", &["float8"], "timestamptz", I),
        f("jsonb_extract_path_text", &["jsonb", "text[]"], "text", I),
        f("jsonb_typeof", &["jsonb"], "text", I),
        f("jsonb_array_length", &["jsonb"], "int4", I),
        f("array_length", &["anyarray", "int4"], "int4", I),
        f("cardinality", &["anyarray"], "int4", I),
        f(
            "array_position",
            &["anycompatiblearray", "anycompatible"],
            "int4",
            I,
        ),
        Fn {
            set: true,
            ..f("generate_series", &["int4", "int4"], "int4", I)
        },
        Fn {
            set: true,
            ..f("unnest", &["anyarray"], "anyelement", I)
        },
        Fn {
            variadic: Some("any"),
            ..f("concat", &["any"], "text", S)
        },
        Fn {
            variadic: Some("any"),
            ..f("concat_ws", &["text", "any"], "text", S)
        },
        Fn {
            variadic: Some("any"),
            ..f("format", &["text", "any"], "text", S)
        },
        agg("count", &[], "int8"),
        agg("count", &["any"], "int8"),
        agg("sum", &["int4"], "int8"),
        agg("sum", &["int8"], "numeric"),
        agg("sum", &["int2"], "int8"),
        agg("sum", &["numeric"], "numeric"),
        agg("sum", &["float8"], "float8"),
        agg("sum", &["interval"], "interval"),
        agg("avg", &["int4"], "numeric"),
        agg("avg", &["int8"], "numeric"),
        agg("avg", &["numeric"], "numeric"),
        agg("avg", &["float8"], "float8"),
        agg("bool_and", &["bool"], "bool"),
        agg("bool_or", &["bool"], "bool"),
        agg("every", &["bool"], "bool"),
        agg("string_agg", &["text", "text"], "text"),
        agg("array_agg", &["anynonarray"], "anyarray"),
        agg("jsonb_agg", &["anyelement"], "jsonb"),
        Fn {
            kind: FunctionKind::Window,
            ..f("row_number", &[], "int8", I)
        },
        Fn {
            kind: FunctionKind::Window,
            ..f("rank", &[], "int8", I)
        },
        Fn {
            schema: PUBLIC,
            ..f("slugify", &["text"], "text", I)
        },
        Fn {
            schema: PUBLIC,
            ..f("stamp", &["text", "timestamptz"], "text", I)
        },
        Fn {
            schema: PUBLIC,
            ..f("current_tenant", &[], "int8", S)
        },
        Fn {
            schema: PUBLIC,
            ..f("bump_counter", &[], "int8", V)
        },
        // One name in two schemas of the default path: which is called
        // depends on schema privileges.
        Fn {
            schema: PUBLIC,
            ..f("initials", &["text"], "text", V)
        },
        Fn {
            schema: APP,
            ..f("initials", &["varchar"], "text", I)
        },
    ];
    for t in [
        "int2",
        "int4",
        "int8",
        "numeric",
        "float8",
        "text",
        "date",
        "timestamp",
        "timestamptz",
        "interval",
        "bpchar",
        "anyenum",
        "anyarray",
    ] {
        let leaked: &'static [&'static str] = match t {
            "int2" => &["int2"],
            "int4" => &["int4"],
            "int8" => &["int8"],
            "numeric" => &["numeric"],
            "float8" => &["float8"],
            "text" => &["text"],
            "date" => &["date"],
            "timestamp" => &["timestamp"],
            "timestamptz" => &["timestamptz"],
            "interval" => &["interval"],
            "bpchar" => &["bpchar"],
            "anyenum" => &["anyenum"],
            _ => &["anyarray"],
        };
        list.push(agg("min", leaked, t));
        list.push(agg("max", leaked, t));
    }
    for x in list {
        let args: Vec<Oid> = x.args.iter().map(|a| type_oid(a)).collect();
        b.function(Function {
            oid: ids.next(),
            schema: x.schema,
            name: x.name.to_owned(),
            kind: x.kind,
            volatility: x.volatility,
            returns_set: x.set,
            result: type_oid(x.result),
            args,
            // public.stamp(text, timestamptz DEFAULT now())
            arg_defaults: u16::from(x.name == "stamp"),
            variadic: x.variadic.map(type_oid),
        });
    }
}

/// `(schema, table, "col type, col type", primary key columns)`.
type TableSpec = (Oid, &'static str, &'static str, &'static [&'static str]);

const TABLES: &[TableSpec] = &[
    // pgbench
    (
        PUBLIC,
        "pgbench_accounts",
        "aid int4, bid int4, abalance int4, filler bpchar",
        &["aid"],
    ),
    (
        PUBLIC,
        "pgbench_branches",
        "bid int4, bbalance int4, filler bpchar",
        &["bid"],
    ),
    (
        PUBLIC,
        "pgbench_tellers",
        "tid int4, bid int4, tbalance int4, filler bpchar",
        &["tid"],
    ),
    // Django
    (
        PUBLIC,
        "auth_user",
        "id int4, password varchar, last_login timestamptz, is_superuser bool, username varchar, \
         first_name varchar, last_name varchar, email varchar, is_staff bool, is_active bool, \
         date_joined timestamptz",
        &["id"],
    ),
    (PUBLIC, "auth_group", "id int4, name varchar", &["id"]),
    (
        PUBLIC,
        "auth_user_groups",
        "id int8, user_id int4, group_id int4",
        &["id"],
    ),
    (
        PUBLIC,
        "auth_permission",
        "id int4, name varchar, content_type_id int4, codename varchar",
        &["id"],
    ),
    (
        PUBLIC,
        "django_session",
        "session_key varchar, session_data text, expire_date timestamptz",
        &["session_key"],
    ),
    (
        PUBLIC,
        "django_content_type",
        "id int4, app_label varchar, model varchar",
        &["id"],
    ),
    (
        PUBLIC,
        "blog_post",
        "id int8, title varchar, slug varchar, body text, author_id int4, status varchar, \
         published_at timestamptz, created date, views int4, rating numeric, tags text[], metadata jsonb",
        &["id"],
    ),
    (
        PUBLIC,
        "blog_comment",
        "id int8, post_id int8, author_name varchar, body text, approved bool, created timestamptz",
        &["id"],
    ),
    // Rails
    (
        PUBLIC,
        "users",
        "id int8, email varchar, encrypted_password varchar, name varchar, admin bool, \
         created_at timestamp, updated_at timestamp, organization_id int8, deleted_at timestamp, \
         sign_in_count int4, uuid uuid",
        &["id"],
    ),
    (
        PUBLIC,
        "organizations",
        "id int8, name varchar, plan varchar, created_at timestamp, updated_at timestamp",
        &["id"],
    ),
    (
        PUBLIC,
        "projects",
        "id int8, organization_id int8, name varchar, archived bool, position int4, created_at timestamp, \
         updated_at timestamp",
        &["id"],
    ),
    (
        PUBLIC,
        "issues",
        "id int8, project_id int8, author_id int8, title varchar, state varchar, priority int4, \
         labels varchar[], created_at timestamp, updated_at timestamp",
        &["id"],
    ),
    (PUBLIC, "schema_migrations", "version varchar", &["version"]),
    (
        PUBLIC,
        "ar_internal_metadata",
        "key varchar, value varchar, created_at timestamp, updated_at timestamp",
        &["key"],
    ),
    // Hibernate
    (
        PUBLIC,
        "customer",
        "id int8, first_name varchar, last_name varchar, email varchar, version int4, created_on timestamp",
        &["id"],
    ),
    (
        PUBLIC,
        "purchase_order",
        "id int8, customer_id int8, status varchar, total numeric, placed_on timestamp",
        &["id"],
    ),
    (
        PUBLIC,
        "order_line",
        "id int8, order_id int8, product_id int8, quantity int4, unit_price numeric",
        &["id"],
    ),
    (
        PUBLIC,
        "product",
        "id int8, sku varchar, name varchar, price numeric, active bool, category_id int8, weight float8",
        &["id"],
    ),
    (
        PUBLIC,
        "category",
        "id int8, name varchar, parent_id int8",
        &["id"],
    ),
    // Prisma
    (
        PUBLIC,
        "User",
        "id text, email text, name text, role Role, \"createdAt\" timestamp, \"updatedAt\" timestamp",
        &["id"],
    ),
    (
        PUBLIC,
        "Post",
        "id int4, title text, content text, published bool, \"authorId\" text, \"createdAt\" timestamp, \
         \"viewCount\" int4",
        &["id"],
    ),
    (
        PUBLIC,
        "Profile",
        "id int4, bio text, \"userId\" text",
        &["id"],
    ),
    (
        PUBLIC,
        "_prisma_migrations",
        "id varchar, checksum varchar, finished_at timestamptz, migration_name varchar, logs text, \
         rolled_back_at timestamptz, started_at timestamptz, applied_steps_count int4",
        &["id"],
    ),
    // Cacheability edge cases
    (
        PUBLIC,
        "events_full",
        "id int8, kind varchar, payload jsonb",
        &[],
    ),
    (
        PUBLIC,
        "audit_log",
        "at timestamptz, actor varchar, action text",
        &[],
    ),
    (
        PUBLIC,
        "secure_docs",
        "id int8, owner varchar, body text",
        &["id"],
    ),
    (PUBLIC, "active_users", "id int8, email varchar", &[]),
    (PUBLIC, "user_stats", "user_id int8, posts int8", &[]),
    (
        PUBLIC,
        "measurements",
        "id int8, city_id int4, logdate date, peaktemp int4",
        &[],
    ),
    (
        PUBLIC,
        "measurements_2024",
        "id int8, city_id int4, logdate date, peaktemp int4",
        &["id"],
    ),
    (PUBLIC, "scratch", "id int8, note text", &["id"]),
    (PUBLIC, "ext_orders", "id int8, total numeric", &[]),
    (PUBLIC, "order_seq", "last_value int8", &[]),
    (PUBLIC, "staging_rows", "id int8, raw text", &["id"]),
    (PUBLIC, "filtered_items", "id int8, region varchar", &["id"]),
    (PUBLIC, "base_entity", "id int8, created timestamp", &["id"]),
    (
        PUBLIC,
        "contacts",
        "id int8, email email, name text",
        &["id"],
    ),
    (PUBLIC, "settings", "key text, value text", &["key"]),
    (
        PUBLIC,
        "schedules",
        "id int8, slots timestamptz[], starts timestamp, day date, note text",
        &["id"],
    ),
    (
        PUBLIC,
        "documents",
        "id int8, body text, search_vector text",
        &["id"],
    ),
    (
        APP,
        "settings",
        "key text, value text, scope text",
        &["key"],
    ),
    (APP, "preferences", "user_id int8, theme text", &["user_id"]),
    (
        REPORTING,
        "daily_totals",
        "day date, total numeric",
        &["day"],
    ),
    // TPC-C
    (
        TPCC,
        "warehouse",
        "w_id int4, w_name varchar, w_street_1 varchar, w_street_2 varchar, w_city varchar, \
         w_state bpchar, w_zip bpchar, w_tax numeric, w_ytd numeric",
        &["w_id"],
    ),
    (
        TPCC,
        "district",
        "d_w_id int4, d_id int4, d_name varchar, d_street_1 varchar, d_street_2 varchar, d_city varchar, \
         d_state bpchar, d_zip bpchar, d_tax numeric, d_ytd numeric, d_next_o_id int4",
        &["d_w_id", "d_id"],
    ),
    (
        TPCC,
        "customer",
        "c_w_id int4, c_d_id int4, c_id int4, c_first varchar, c_middle bpchar, c_last varchar, \
         c_street_1 varchar, c_city varchar, c_state bpchar, c_zip bpchar, c_phone bpchar, \
         c_since timestamp, c_credit bpchar, c_credit_lim numeric, c_discount numeric, c_balance numeric, \
         c_ytd_payment numeric, c_payment_cnt int4, c_delivery_cnt int4, c_data varchar",
        &["c_w_id", "c_d_id", "c_id"],
    ),
    (
        TPCC,
        "item",
        "i_id int4, i_im_id int4, i_name varchar, i_price numeric, i_data varchar",
        &["i_id"],
    ),
    (
        TPCC,
        "stock",
        "s_w_id int4, s_i_id int4, s_quantity int4, s_dist_01 bpchar, s_dist_02 bpchar, s_ytd int4, \
         s_order_cnt int4, s_remote_cnt int4, s_data varchar",
        &["s_w_id", "s_i_id"],
    ),
    (
        TPCC,
        "oorder",
        "o_w_id int4, o_d_id int4, o_id int4, o_c_id int4, o_carrier_id int4, o_ol_cnt int4, \
         o_all_local int4, o_entry_d timestamp",
        &["o_w_id", "o_d_id", "o_id"],
    ),
    (
        TPCC,
        "new_order",
        "no_w_id int4, no_d_id int4, no_o_id int4",
        &["no_w_id", "no_d_id", "no_o_id"],
    ),
    (
        TPCC,
        "order_line",
        "ol_w_id int4, ol_d_id int4, ol_o_id int4, ol_number int4, ol_i_id int4, ol_supply_w_id int4, \
         ol_delivery_d timestamp, ol_quantity int4, ol_amount numeric, ol_dist_info bpchar",
        &["ol_w_id", "ol_d_id", "ol_o_id", "ol_number"],
    ),
    // TPC-H
    (
        TPCH,
        "region",
        "r_regionkey int4, r_name bpchar, r_comment varchar",
        &["r_regionkey"],
    ),
    (
        TPCH,
        "nation",
        "n_nationkey int4, n_name bpchar, n_regionkey int4, n_comment varchar",
        &["n_nationkey"],
    ),
    (
        TPCH,
        "supplier",
        "s_suppkey int4, s_name bpchar, s_address varchar, s_nationkey int4, s_phone bpchar, \
         s_acctbal numeric, s_comment varchar",
        &["s_suppkey"],
    ),
    (
        TPCH,
        "part",
        "p_partkey int4, p_name varchar, p_mfgr bpchar, p_brand bpchar, p_type varchar, p_size int4, \
         p_container bpchar, p_retailprice numeric, p_comment varchar",
        &["p_partkey"],
    ),
    (
        TPCH,
        "partsupp",
        "ps_partkey int4, ps_suppkey int4, ps_availqty int4, ps_supplycost numeric, ps_comment varchar",
        &["ps_partkey", "ps_suppkey"],
    ),
    (
        TPCH,
        "customer",
        "c_custkey int4, c_name varchar, c_address varchar, c_nationkey int4, c_phone bpchar, \
         c_acctbal numeric, c_mktsegment bpchar, c_comment varchar",
        &["c_custkey"],
    ),
    (
        TPCH,
        "orders",
        "o_orderkey int4, o_custkey int4, o_orderstatus bpchar, o_totalprice numeric, o_orderdate date, \
         o_orderpriority bpchar, o_clerk bpchar, o_shippriority int4, o_comment varchar",
        &["o_orderkey"],
    ),
    (
        TPCH,
        "lineitem",
        "l_orderkey int4, l_partkey int4, l_suppkey int4, l_linenumber int4, l_quantity numeric, \
         l_extendedprice numeric, l_discount numeric, l_tax numeric, l_returnflag bpchar, \
         l_linestatus bpchar, l_shipdate date, l_commitdate date, l_receiptdate date, \
         l_shipinstruct bpchar, l_shipmode bpchar, l_comment varchar",
        &["l_orderkey", "l_linenumber"],
    ),
    // pg_catalog and information_schema
    (
        oids::PG_CATALOG,
        "pg_class",
        "oid oid, relname name, relnamespace oid, relkind text",
        &["oid"],
    ),
    (
        oids::PG_CATALOG,
        "pg_namespace",
        "oid oid, nspname name",
        &["oid"],
    ),
    (
        oids::PG_CATALOG,
        "pg_attribute",
        "attrelid oid, attname name, attnum int2",
        &[],
    ),
    (
        oids::PG_CATALOG,
        "pg_type",
        "oid oid, typname name",
        &["oid"],
    ),
    (
        oids::PG_CATALOG,
        "pg_stat_activity",
        "pid int4, state text, query text",
        &[],
    ),
    (
        oids::PG_CATALOG,
        "pg_tables",
        "schemaname name, tablename name",
        &[],
    ),
    (
        INFORMATION_SCHEMA,
        "tables",
        "table_schema name, table_name name, table_type varchar",
        &[],
    ),
    (
        INFORMATION_SCHEMA,
        "columns",
        "table_schema name, table_name name, column_name name",
        &[],
    ),
];

fn parse_columns(spec: &str) -> Vec<Column> {
    spec.split(", ")
        .enumerate()
        .map(|(i, c)| {
            let (name, ty) = c.trim().rsplit_once(' ').unwrap_or((c, "text"));
            let name = name.trim().trim_matches('"').to_owned();
            let generated = name == "search_vector";
            Column {
                name,
                attnum: i16::try_from(i + 1).unwrap_or(i16::MAX),
                type_oid: type_oid(ty.trim()),
                typmod: -1,
                collation: Oid(0),
                not_null: false,
                generated,
            }
        })
        .collect()
}

fn tables(b: &mut SnapshotBuilder, ids: &mut Oids) {
    for (schema, name, cols, pk) in TABLES {
        let columns = parse_columns(cols);
        let primary_key = pk
            .iter()
            .filter_map(|k| columns.iter().find(|c| c.name == *k).map(|c| c.attnum))
            .collect();
        let mut t = Table {
            oid: ids.next(),
            schema: *schema,
            name: (*name).to_owned(),
            kind: RelKind::Table,
            persistence: Persistence::Permanent,
            row_security: false,
            force_row_security: false,
            replica_identity: ReplicaIdentity::Default,
            is_partition: false,
            has_children: false,
            write_side_effects: false,
            columns,
            primary_key,
            membership: Membership::Published,
        };
        match *name {
            "events_full" => t.replica_identity = ReplicaIdentity::Full,
            "secure_docs" => t.row_security = true,
            "active_users" | "pg_stat_activity" | "pg_tables" | "tables" | "columns" => {
                t.kind = RelKind::View
            }
            "user_stats" => t.kind = RelKind::MaterializedView,
            "measurements" => {
                t.kind = RelKind::PartitionedTable;
                t.has_children = true;
            }
            "measurements_2024" => t.is_partition = true,
            "scratch" => t.persistence = Persistence::Unlogged,
            "ext_orders" => t.kind = RelKind::ForeignTable,
            "order_seq" => t.kind = RelKind::Sequence,
            "staging_rows" => t.membership = Membership::NotPublished,
            "filtered_items" => t.membership = Membership::RowFilter,
            "base_entity" => t.has_children = true,
            _ => {}
        }
        if *schema == oids::PG_CATALOG || *schema == INFORMATION_SCHEMA {
            t.membership = Membership::NotPublished;
        }
        b.table(t);
    }
}

/// The fixture snapshot: see the module documentation.
pub fn snapshot() -> Snapshot {
    let mut b = SnapshotBuilder::new();
    for (oid, name) in [
        (oids::PG_CATALOG, "pg_catalog"),
        (PUBLIC, "public"),
        (INFORMATION_SCHEMA, "information_schema"),
        (APP, "app"),
        (TPCC, "tpcc"),
        (TPCH, "tpch"),
        (REPORTING, "reporting"),
    ] {
        b.schema(Schema {
            oid,
            name: name.to_owned(),
        });
    }
    let mut ids = Oids(20_000);
    types(&mut b);
    casts(&mut b);
    operators(&mut b, &mut ids);
    functions(&mut b, &mut ids);
    tables(&mut b, &mut ids);
    b.publication(Some(Publication {
        name: PUBLICATION.to_owned(),
        all_tables: false,
        insert: true,
        update: true,
        delete: true,
        truncate: true,
        via_root: false,
    }));
    b.build()
}

/// The fixture's default search_path (`"$user", public` for user `app`).
pub fn fixture_path(snapshot: &Snapshot) -> EffectivePath {
    SearchPath::default().effective(snapshot, "app")
}
