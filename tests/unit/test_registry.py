"""Registry parsing (problems with exact line numbers), the shipped Flanders file, and `drukte registry check`."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import pytest

from drukte.registry_check import check_file, load_registry
from streams.errors import RegistryError
from streams.registry import DEFAULT_LEVELS, SECTORS, Levels, Registry, parse_registry

FLANDERS = Path(__file__).resolve().parents[2] / "deploy" / "registry" / "flanders.yaml"

# A small valid registry. Cases below edit single lines, so every line number here stays put.
VALID = """\
defaults:
  levels: {normal: 300, busy: 1500, very_busy: 3500}
cities:
  - id: mechelen
    name: Mechelen
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: mechelen-bruul
        name: Bruul
        area_m2: 5200
        levels: {normal: 600, busy: 2500, very_busy: 5000}
        sensors:
          - {id: mech-bruul-01, kind: street}
          - {id: mech-bruul-02, kind: street}
          - {id: mech-bruul-03, kind: entrance}
      - id: mechelen-ijzerenleen
        name: IJzerenleen
        sensors:
          - {id: mech-ijzerenleen-01, kind: street}
          - {id: mech-ijzerenleen-02, kind: street}
          - {id: mech-ijzerenleen-03, kind: street}
  - id: roeselare
    name: Roeselare
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: roeselare-ooststraat
        name: Ooststraat
        sensors:
          - {id: roes-ooststraat-01, kind: street}
          - {id: roes-ooststraat-02, kind: street}
          - {id: roes-ooststraat-03, kind: street}
merchants:
  - {id: m-000001, zone: mechelen-bruul, sector: fashion}
  - {id: m-000002, zone: roeselare-ooststraat, sector: food_and_drink}
"""

Edit = tuple[int, str, str]


def edited(*edits: Edit) -> str:
    """VALID with `old` replaced by `new` on the given 1-based lines (each `old` must be there)."""
    lines = VALID.splitlines()
    for nr, old, new in edits:
        assert old in lines[nr - 1], f"line {nr} is {lines[nr - 1]!r}, has no {old!r}"
        lines[nr - 1] = lines[nr - 1].replace(old, new)
    return "\n".join(lines) + "\n"


def drop(nr: int) -> Edit:
    """An edit that blanks line `nr`, keeping the numbering of the lines after it."""
    return (nr, VALID.splitlines()[nr - 1], "")


def problems_of(text: str) -> list[tuple[int, str]]:
    with pytest.raises(RegistryError) as info:
        parse_registry(text)
    return info.value.problems


def test_valid_registry_parses() -> None:
    reg = parse_registry(VALID)
    assert [c.id for c in reg.cities] == ["mechelen", "roeselare"]
    assert list(reg.zones) == ["mechelen-bruul", "mechelen-ijzerenleen", "roeselare-ooststraat"]
    assert reg.sensors["mech-bruul-03"].kind == "entrance"
    assert reg.sensors["mech-bruul-03"].zone_id == "mechelen-bruul"
    assert reg.city_of_zone["roeselare-ooststraat"].name == "Roeselare"
    assert reg.merchants_by_id["m-000002"].sector == "food_and_drink"
    assert reg.zones["mechelen-bruul"].area_m2 == 5200
    assert reg.zones["mechelen-ijzerenleen"].area_m2 is None
    # Own levels where given, the file's defaults otherwise.
    assert reg.zones["mechelen-bruul"].levels == Levels(600, 2500, 5000)
    assert reg.zones["mechelen-ijzerenleen"].levels == Levels(**DEFAULT_LEVELS)
    assert reg.city("roeselare") is not None
    assert reg.city("gent") is None
    assert hash(reg) == hash(parse_registry(VALID))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The same sensor id twice: the second one is wrong, and the message says where the first is.
        pytest.param(edited((15, "mech-bruul-02", "mech-bruul-01")),
                     [(15, "sensor id 'mech-bruul-01' already used on line 14")], id="duplicate-sensor"),
        # Sensor ids are unique across zones too, not only within one.
        pytest.param(edited((31, "roes-ooststraat-01", "mech-bruul-01")),
                     [(31, "sensor id 'mech-bruul-01' already used on line 14")], id="duplicate-sensor-other-zone"),
        # Zone ids key topics and the store, so they are unique in the whole registry.
        pytest.param(edited((17, "mechelen-ijzerenleen", "mechelen-bruul")),
                     [(17, "zone id 'mechelen-bruul' already used on line 9")], id="duplicate-zone"),
        pytest.param(edited((23, "roeselare", "mechelen")),
                     [(23, "city id 'mechelen' already used on line 4")], id="duplicate-city"),
        pytest.param(edited((36, "m-000002", "m-000001")),
                     [(36, "merchant id 'm-000001' already used on line 35")], id="duplicate-merchant"),
        # A key written twice would silently win in plain YAML loading; here it is an error.
        pytest.param(edited((26, "country: BE", "name: Roeselare")),
                     [(23, "city roeselare: missing 'country'"), (26, "key 'name' appears twice (first on line 24)")],
                     id="duplicate-key"),
        # Only the two kinds of counter the contract knows.
        pytest.param(edited((16, "entrance", "door")),
                     [(16, "kind 'door' must be one of street, entrance")], id="unknown-sensor-kind"),
        # P7: a zone needs three sensors; the problem points at the zone.
        pytest.param(edited(drop(22)),
                     [(17, "zone mechelen-ijzerenleen: needs at least 3 sensors, has 2")], id="two-sensors"),
        # No sensors at all, an empty `sensors:`, is the same rule, not a type error.
        pytest.param(edited(drop(31), drop(32), drop(33)),
                     [(28, "needs at least 3 sensors, has 0")], id="no-sensors"),
        # Time zones are IANA names, spelled exactly.
        pytest.param(edited((6, "Europe/Brussels", "Europe/Brussel")),
                     [(6, "unknown time zone 'Europe/Brussel'")], id="bad-timezone"),
        # A tz folder raises IsADirectoryError inside zoneinfo; it must still be a clean problem.
        pytest.param(edited((6, "Europe/Brussels", "Europe")),
                     [(6, "unknown time zone 'Europe'")], id="timezone-folder"),
        pytest.param(edited((7, "BE", "Belgium")),
                     [(7, "country 'Belgium' must be a two-letter ISO code like BE")], id="bad-country"),
        pytest.param(edited((26, "BE", "be")),
                     [(26, "country 'be' must be a two-letter ISO code")], id="lower-case-country"),
        # Unknown keys point at the key itself; a misspelt required key also reports the missing one.
        pytest.param(edited((10, "name:", "naam:")),
                     [(9, "zone mechelen-bruul: missing 'name'"), (10, "zone: unknown key 'naam'")],
                     id="misspelt-key"),
        pytest.param(edited((34, "merchants:", "merchant:")),
                     [(34, "registry: unknown key 'merchant'")], id="unknown-top-key"),
        pytest.param(edited((14, "kind: street", "kind: street, floor: 0")),
                     [(14, "sensor: unknown key 'floor'")], id="unknown-sensor-key"),
        # An empty required value is reported, not silently dropping the zone.
        pytest.param(edited((18, "IJzerenleen", "")),
                     [(18, "zone mechelen-ijzerenleen: 'name' is empty")], id="empty-name"),
        pytest.param(edited((9, "mechelen-bruul", "Mechelen Bruul")),
                     [(9, "id 'Mechelen Bruul' must be lower-case letters, digits and '-'"),
                      (35, "zone 'mechelen-bruul' is not in the registry")], id="bad-id"),
        pytest.param(edited((11, "5200", "0")),
                     [(11, "area_m2 must be a whole number of m² ≥ 1, got '0'")], id="zero-area"),
        pytest.param(edited((11, "5200", "52.5")),
                     [(11, "area_m2 must be a whole number of m² ≥ 1, got '52.5'")], id="fractional-area"),
        # Merchants must sit in a zone of the registry and a known sector.
        pytest.param(edited((36, "roeselare-ooststraat", "roeselare-noordstraat")),
                     [(36, "merchant m-000002: zone 'roeselare-noordstraat' is not in the registry")],
                     id="merchant-unknown-zone"),
        pytest.param(edited((35, "fashion", "clothing")),
                     [(35, "sector 'clothing' must be one of fashion, food_and_drink")], id="unknown-sector"),
        # Levels must rise; an equal pair would make a level unreachable.
        pytest.param(edited((12, "normal: 600", "normal: 3000")),
                     [(12, "zone mechelen-bruul levels: need normal < busy < very_busy, "
                           "got normal 3000, busy 2500, very_busy 5000")], id="levels-out-of-order"),
        pytest.param(edited((12, "very_busy: 5000", "very_busy: 2500")),
                     [(12, "need normal < busy < very_busy")], id="levels-equal"),
        # A partial override is checked against the levels it inherits.
        pytest.param(edited((12, "{normal: 600, busy: 2500, very_busy: 5000}", "{very_busy: 1000}")),
                     [(12, "got normal 300, busy 1500, very_busy 1000")], id="levels-inherited-order"),
        pytest.param(edited((2, "normal: 300", "normal: -1")),
                     [(2, "defaults levels: normal must be a whole number of visitors per hour ≥ 0")],
                     id="negative-default-level"),
        pytest.param(edited((12, "busy: 2500", "busy: lots")),
                     [(12, "busy must be a whole number of visitors per hour ≥ 0, got 'lots'")],
                     id="text-level"),
        pytest.param(edited((12, "very_busy", "crowded")),
                     [(12, "levels: unknown key 'crowded'")], id="unknown-level"),
        # Invalid YAML: one problem at the line the parser stopped, with the context's line when it differs.
        pytest.param(edited((5, "name: Mechelen", "name Mechelen")),
                     [(6, "not valid YAML: could not find expected ':' (while scanning a simple key on line 5)")],
                     id="yaml-missing-colon"),
        pytest.param(edited((14, "kind: street}", "kind: street")),
                     [(15, "not valid YAML")], id="yaml-unclosed-flow"),
        pytest.param(edited((7, "    country", "\tcountry")),
                     [(7, "indent with spaces, not tabs")], id="yaml-tab"),
        pytest.param(edited((24, "Roeselare", "Roeselare\x07")),
                     [(24, "not valid YAML: special characters are not allowed")], id="yaml-control-char"),
        pytest.param(VALID + "---\ncities: []\n",
                     [(37, "found another document (expected a single document in the stream on line 1)")],
                     id="yaml-two-documents"),
        # Explicit tags are never constructed (no arbitrary objects from a config file).
        pytest.param(edited((24, "Roeselare", "!!python/name:os.system x")),
                     [(24, "only plain values are allowed")], id="yaml-python-tag"),
        # Shapes: the file must be a mapping with a non-empty list of cities.
        pytest.param("", [(0, "the registry is empty")], id="empty-file"),
        pytest.param("- mechelen\n", [(1, "registry must be a mapping")], id="root-is-list"),
        pytest.param("cities: []\n", [(1, "needs a 'cities:' list with at least one city")], id="no-cities"),
        pytest.param("merchants: []\n", [(1, "needs a 'cities:' list")], id="cities-missing"),
        pytest.param(edited((34, "merchants:", "merchants: all"), drop(35), drop(36)),
                     [(34, "merchants must be a list")], id="merchants-not-a-list"),
        # A wrong shape is one problem, not also "needs at least one city".
        pytest.param("cities: mechelen\n", [(1, "cities must be a list")], id="cities-not-a-list"),
        pytest.param(edited((19, "sensors:", "sensors: 3"), drop(20), drop(21), drop(22)),
                     [(19, "zone mechelen-ijzerenleen sensors must be a list")], id="sensors-not-a-list"),
    ],
)
def test_problems_have_exact_lines(text: str, expected: list[tuple[int, str]]) -> None:
    problems = problems_of(text)
    assert len(problems) == len(expected), problems
    for (line, msg), (want_line, want_fragment) in zip(problems, expected, strict=True):
        assert line == want_line, (line, msg)
        assert want_fragment in msg, msg


def test_every_problem_is_reported_at_once() -> None:
    # A user fixing the file wants the whole list, not one error per run.
    text = edited((6, "Europe/Brussels", "Mars/Olympus"), (16, "entrance", "door"), (35, "fashion", "shoes"))
    assert [line for line, _ in problems_of(text)] == [6, 16, 35]


def test_country_no_stays_text() -> None:
    # YAML 1.1 reads a bare NO as false; a registry for Norway must still work.
    reg = parse_registry(edited((7, "BE", "NO"), (6, "Europe/Brussels", "Europe/Oslo")))
    assert reg.cities[0].country == "NO"
    assert reg.cities[0].timezone == "Europe/Oslo"


def test_registry_error_message_lists_lines() -> None:
    with pytest.raises(RegistryError, match=r"line 16: sensor mech-bruul-03: kind 'door'"):
        parse_registry(edited((16, "entrance", "door")))


# --- the shipped Flanders registry ---------------------------------------------------------------

@pytest.fixture(scope="module")
def flanders() -> Registry:
    return parse_registry(FLANDERS.read_text(encoding="utf-8"))


def test_flanders_has_the_four_cities(flanders: Registry) -> None:
    assert sorted(c.id for c in flanders.cities) == ["antwerpen", "leuven", "mechelen", "roeselare"]
    for city in flanders.cities:
        assert (city.timezone, city.country) == ("Europe/Brussels", "BE")
        assert len(city.zones) >= 5, city.id
        for zone in city.zones:
            assert zone.id.startswith(f"{city.id}-"), zone.id
            assert 3 <= len(zone.sensors) <= 5, zone.id
            assert zone.area_m2 is not None


@pytest.mark.parametrize(
    ("zone_id", "name"),
    [
        # The streets the contract names; ids and names must not drift from it.
        ("mechelen-bruul", "Bruul"),
        ("mechelen-ijzerenleen", "IJzerenleen"),
        ("mechelen-grote-markt", "Grote Markt"),
        ("antwerpen-meir", "Meir"),
        ("antwerpen-groenplaats", "Groenplaats"),
        ("antwerpen-kammenstraat", "Kammenstraat"),
        ("leuven-bondgenotenlaan", "Bondgenotenlaan"),
        ("leuven-diestsestraat", "Diestsestraat"),
        ("leuven-oude-markt", "Oude Markt"),
        ("roeselare-ooststraat", "Ooststraat"),
        ("roeselare-grote-markt", "Grote Markt"),
    ],
)
def test_flanders_has_the_contract_streets(flanders: Registry, zone_id: str, name: str) -> None:
    assert flanders.zones[zone_id].name == name


def test_flanders_merchants(flanders: Registry) -> None:
    per_zone = Counter(m.zone_id for m in flanders.merchants)
    assert {z: per_zone[z] for z in flanders.zones if per_zone[z] < 6} == {}
    assert {m.sector for m in flanders.merchants} == set(SECTORS)
    assert [m.id for m in flanders.merchants] == [f"m-{n:06d}" for n in range(1, len(flanders.merchants) + 1)]
    # P12 publishes a spending cell only with 5 merchants in it; every city needs at least one such cell.
    cells = Counter((flanders.city_of_zone[m.zone_id].id, m.zone_id, m.sector) for m in flanders.merchants)
    assert {city for (city, _, _), n in cells.items() if n >= 5} == {c.id for c in flanders.cities}


def test_flanders_levels_scale_with_the_street(flanders: Registry) -> None:
    meir, manestraat = flanders.zones["antwerpen-meir"].levels, flanders.zones["roeselare-manestraat"].levels
    assert meir.very_busy > DEFAULT_LEVELS["very_busy"] > manestraat.very_busy
    assert flanders.zones["mechelen-grote-markt"].levels == Levels(**DEFAULT_LEVELS)
    assert any(z.kind == "entrance" for z in flanders.sensors.values())


# --- check_file and load_registry -----------------------------------------------------------------

def test_check_file_ok(tmp_path: Path) -> None:
    path = tmp_path / "reg.yaml"
    path.write_text(VALID, encoding="utf-8")
    out = io.StringIO()
    assert check_file(path, out) == 0
    assert out.getvalue() == "OK: 2 steden, 3 zones, 9 sensoren, 2 handelaars (cities/zones/sensors/merchants)\n"


def test_check_file_flanders() -> None:
    out = io.StringIO()
    assert check_file(FLANDERS, out) == 0
    assert out.getvalue().startswith("OK: 4 steden, ")


def test_check_file_problems(tmp_path: Path) -> None:
    path = tmp_path / "reg.yaml"
    path.write_text(edited((6, "Europe/Brussels", "Europe/Brussel"), (16, "entrance", "door")), encoding="utf-8")
    out = io.StringIO()
    assert check_file(path, out) == 1
    lines = out.getvalue().splitlines()
    assert lines[0] == (f"{path}:6: city mechelen: unknown time zone 'Europe/Brussel' "
                        "(use an IANA name like Europe/Brussels)")
    assert lines[1] == f"{path}:16: sensor mech-bruul-03: kind 'door' must be one of street, entrance"
    assert lines[2].startswith("2 problemen gevonden; verbeter ze en controleer opnieuw (2 problems found;")
    assert f"drukte registry check {path}" in lines[2]
    assert len(lines) == 3


def test_check_file_problem_without_line(tmp_path: Path) -> None:
    # Line 0 ("somewhere in the file") prints as FILE: message, not FILE:0:.
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    out = io.StringIO()
    assert check_file(path, out) == 1
    assert out.getvalue().splitlines()[0] == f"{path}: the registry is empty; it needs a 'cities:' list"
    assert out.getvalue().splitlines()[1].startswith("1 probleem gevonden")


def test_check_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(VALID.replace("Roeselare\n", "Roeselaré\n").encode("latin-1"))
    out = io.StringIO()
    assert check_file(path, out) == 1
    assert out.getvalue().startswith(f"{path}:24: not UTF-8 text (byte 0xe9)")


def test_check_file_accepts_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_text(VALID, encoding="utf-8-sig")
    assert check_file(path, io.StringIO()) == 0


@pytest.mark.parametrize(
    "name",
    [
        "missing.yaml",  # no such file
        ".",  # a directory, not a file
    ],
)
def test_check_file_unreadable(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    out = io.StringIO()
    assert check_file(path, out) == 2
    assert out.getvalue().startswith(f"FOUT: kan {path} niet lezen (cannot read the registry file): ")
    assert out.getvalue().count("\n") == 1


def test_load_registry(tmp_path: Path) -> None:
    path = tmp_path / "reg.yaml"
    path.write_text(VALID, encoding="utf-8")
    assert load_registry(path) == parse_registry(VALID)


def test_load_registry_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "reg.yaml"
    path.write_text(edited((16, "entrance", "door")), encoding="utf-8")
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert str(info.value) == f"{path}:16: sensor mech-bruul-03: kind 'door' must be one of street, entrance"
    assert info.value.problems == [(16, "sensor mech-bruul-03: kind 'door' must be one of street, entrance")]


def test_load_registry_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(RegistryError, match="cannot read the registry file") as info:
        load_registry(path)
    assert str(info.value).startswith(f"{path}: ")


CSV_REGISTRY = """
cities:
  - id: leuven
    name: Leuven
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: leuven-x
        name: X
        sensors: [{id: s-1, kind: street}, {id: s-2, kind: street}, {id: s-3, kind: street}]
merchants:
  - {id: m-1, zone: leuven-x, sector: fashion}
merchants_csv: shops.csv
"""


def test_merchants_from_a_csv_the_registry_names() -> None:
    files = {"shops.csv": "id,zone,sector\nm-2,leuven-x,groceries\n\nm-3,leuven-x,leisure\n"}
    registry = parse_registry(CSV_REGISTRY, files.__getitem__)
    assert [(m.id, m.sector) for m in registry.merchants] == [("m-1", "fashion"), ("m-2", "groceries"),
                                                               ("m-3", "leisure")]


@pytest.mark.parametrize(("csv_text", "message"), [
    ("name,zone,sector\n", "shops.csv line 1: the header must be id,zone,sector"),
    ("id,zone,sector\nm-2,leuven-y,fashion\n", "shops.csv line 2: zone 'leuven-y' is not in the registry"),
    ("id,zone,sector\nm-2,leuven-x,bakery\n", "shops.csv line 2: sector 'bakery' must be one of"),
    ("id,zone,sector\nm-1,leuven-x,fashion\n", "shops.csv line 2: merchant id 'm-1' already used"),
    ("id,zone,sector\nm-2,leuven-x,fashion\nm-2,leuven-x,fashion\n", "shops.csv line 3: merchant id 'm-2' already "
                                                                     "used on line 2"),
    ("id,zone,sector\nM 2,leuven-x\n", "shops.csv line 2: needs 3 fields"),
])
def test_a_broken_merchants_csv_names_its_line(csv_text: str, message: str) -> None:
    with pytest.raises(RegistryError) as err:
        parse_registry(CSV_REGISTRY, {"shops.csv": csv_text}.__getitem__)
    assert err.value.problems[0][0] == 13  # the registry line that names the file
    assert message in str(err.value)


def test_a_missing_merchants_csv_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(CSV_REGISTRY)
    with pytest.raises(RegistryError, match=r"registry.yaml:13: merchants_csv: cannot read 'shops.csv'"):
        load_registry(path)
    (tmp_path / "shops.csv").write_text("id,zone,sector\nm-9,leuven-x,leisure\n")
    assert [m.id for m in load_registry(path).merchants] == ["m-1", "m-9"]
