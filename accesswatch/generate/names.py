"""Pools of names, places and codes that make a force's data look like a real one.

Surnames follow the skew of a UK population (a few very common names, a long tail
of rare ones) so that sharing a surname with a member of staff is common and
means nothing on its own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Approximate shares per 10,000 people in England and Wales: the head of the curve.
# "name:share", space-separated; an underscore stands for a space inside a name.
_COMMON_SURNAMES_TEXT = """
    Smith:126 Jones:80 Williams:56 Taylor:50 Brown:47 Davies:44 Evans:34 Wilson:33 Thomas:31
    Johnson:30 Roberts:30 Robinson:25 Thompson:25 Wright:25 Walker:24 White:23 Edwards:22
    Hughes:22 Green:22 Hall:21 Lewis:21 Harris:21 Clarke:20 Patel:20 Jackson:19 Wood:19
    Turner:18 Martin:18 Cooper:18 Hill:18 Ward:17 Morris:17 Moore:17 Clark:17 Lee:16 King:16
    Baker:16 Harrison:16 Morgan:15 Allen:15 James:15 Scott:14 Phillips:14 Watson:14 Davis:14
    Parker:13 Price:13 Bennett:13 Young:13 Griffiths:13 Mitchell:13 Kelly:13 Cook:13 Carter:12
    Richardson:12 Bailey:12 Collins:12 Bell:12 Shaw:12 Murphy:12 Miller:12 Cox:11 Richards:11
    Khan:11 Marshall:11 Anderson:11 Simpson:11 Ellis:11 Adams:11 Singh:11 Begum:11 Wilkinson:10
    Foster:10 Chapman:10 Powell:10 Webb:10 Rogers:10 Gray:10 Mason:10 Ali:10 Hunt:10 Hussain:10
    Campbell:10 Matthews:10 Owen:10 Palmer:9 Holmes:9 Mills:9 Barnes:9 Knight:9 Lloyd:9 Butler:9
    Russell:9 Barker:9 Fisher:9 Stevens:9 Jenkins:9 Murray:9 Dixon:9 Harvey:9 Graham:8 Pearson:8
    Ahmed:8 Fletcher:8 Walsh:8 Kaur:8 Gibson:8 Howard:8 Andrews:8 Stewart:8 Elliott:8 Reynolds:8
    Saunders:8 Payne:8 Fox:8 Ford:7 Pearce:7 Day:7 Brooks:7 West:7 Lawrence:7 Cole:7 Atkinson:7
    Bradley:7 Spencer:7 Gill:7 Dawson:7 Ball:7 Burton:7 O'Brien:7 Watts:6 Rose:6 Booth:6 Perry:6
    Ryan:6 Grant:6 Wells:6 Armstrong:6 Francis:6 Rees:6 Hayes:6 Hart:6 Hudson:6 Newman:6
    Barrett:6 Webster:6 Hunter:6 Gregory:6 Carr:6 Lowe:6 Page:5 Marsh:5 Riley:5 Dunn:5 Woods:5
    Parsons:5 Berry:5 Stone:5 Reid:5 Holland:5 Hawkins:5 Harding:5 Porter:5 Robertson:5 Newton:5
    Oliver:5 Reed:5 Kennedy:5 Williamson:5 Bird:5 Gardner:5 Shah:5 Dean:5 Lane:5 Cooke:5 Bates:5
    Henderson:5 Parry:5 Burgess:5 Bishop:5 Walton:4 Burns:4 Nicholson:4 Shepherd:4 Ross:4
    Cross:4 Long:4 Freeman:4 Warren:4 Nicholls:4 Hamilton:4 Byrne:4 Sutton:4 McDonald:4 Yates:4
    Hodgson:4 Robson:4 Curtis:4 Hopkins:4 O'Connor:4 Harper:4 Coleman:4 Watkins:4 Moss:4
    McCarthy:4 Chambers:4 O'Neill:4 Griffin:4 Sharp:4 Hardy:4 Wheeler:4 Potter:4 Osborne:4
    Johnston:4 Gordon:4 Doyle:4 Wallace:4 George:4 Jordan:4 Hutchinson:4 Rahman:4 Akhtar:4
    MacDonald:3 Iqbal:3 Mahmood:3 Kowalski:2 Nowak:2 Okafor:2 Adeyemi:2 Nguyen:2 Sutcliffe:3
    Ackroyd:2 Holroyd:2 Haigh:2 Greenwood:3 Smith-Jones:1 Lloyd-Davies:1 D'Souza:1
    Van_der_Berg:1
"""
_COMMON_SURNAMES: tuple[tuple[str, float], ...] = tuple(
    (name.replace("_", " "), float(share))
    for name, share in (item.split(":") for item in _COMMON_SURNAMES_TEXT.split())
)

# Syllables for the long tail of rare (mostly northern English) surnames.
_TAIL_HEADS = _words(
    "Ash Brig Hol Ack Thorn Rams Wad Bram Crow Hep Mid Ard Bar Cal Dal Fen Gar Hal Kel Lang "
    "Mor Nor Ox Pen Rad Shel Tod Whit Wool Yar "
)
_TAIL_TAILS = _words(
    "worth house royd ley ton den field shaw by well ridge croft ham wick thwaite stead "
    "bottom clough "
)

FORENAMES_F = _words(
    "Olivia Amelia Emily Sophie Jessica Chloe Lucy Hannah Sarah Laura Rebecca Emma Charlotte "
    "Amy Rachel Claire Nicola Karen Helen Susan Julie Michelle Kelly Joanne Aisha Fatima "
    "Priya Zara Megan Ellie Grace Mia "
)
FORENAMES_M = _words(
    "Oliver Jack Harry George Thomas James William Daniel Matthew David Michael Paul Mark "
    "Andrew Richard Stephen Christopher Peter John Robert Lee Craig Gary Darren Mohammed Ali "
    "Adam Ryan Liam Connor Kyle Jamie "
)

STREETS = _words(
    "Park Church Station Victoria Mill Chapel Moor High Albert Manor Oak Green Queen King "
    "Springfield Beech Hollin Woodhouse Kirkstall Roundhay Harehills Chapeltown Meanwood "
    "Otley Wakefield Bradford Halifax Ilkley Selby "
)
STREET_KINDS = ("Road", "Street", "Lane", "Avenue", "Close", "Grove", "Terrace", "Drive", "Mount")

OPERATION_WORDS = _words(
    "KESTREL HARRIER OSPREY MERLIN LAPWING CURLEW SKYLARK HERON BITTERN GOSHAWK PEREGRINE "
    "NIGHTJAR WAGTAIL FIELDFARE REDSHANK SANDPIPER PLOVER DUNLIN KITTIWAKE GANNET PUFFIN "
    "SISKIN "
)

# Postcode unit letters never include C, I, K, M, O or V.
_UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
_VRM_LETTERS = "ABCDEFGHJKLMNOPRSTUVWXY"


@dataclass(frozen=True, slots=True)
class Area:
    """A policing area, with the postcode districts it covers."""

    name: str
    code: str
    weight: float
    districts: tuple[str, ...]


AREAS: tuple[Area, ...] = (
    Area("City", "CTY", 1.4, ("LS1", "LS2", "LS3", "LS4", "LS6", "LS7", "LS8")),
    Area("North", "NTH", 0.9, ("LS16", "LS17", "LS18", "LS19", "LS20", "LS21")),
    Area("East", "EST", 1.0, ("LS9", "LS14", "LS15", "LS25", "LS26")),
    Area("South", "STH", 1.1, ("LS10", "LS11", "WF1", "WF2", "WF3")),
    Area("West", "WST", 1.0, ("LS12", "LS13", "LS28", "BD3", "BD4")),
    Area("Moorland", "MOR", 0.6, ("BD16", "BD20", "BD21", "BD22")),
    Area("Riverside", "RVS", 0.9, ("HX1", "HX2", "HX3", "HD1", "HD2")),
)

# Force-wide staff (control room, central units, contractors) serve no single area.
FORCE_WIDE_AREA = "HQ"


def surname_pool(rng: random.Random) -> tuple[list[str], list[float]]:
    """Names and cumulative weights; about 40% of people carry a tail name."""
    names = [n for n, _ in _COMMON_SURNAMES]
    weights = [w for _, w in _COMMON_SURNAMES]
    head_total = sum(weights)
    tail = sorted({h + t for h in _TAIL_HEADS for t in _TAIL_TAILS})
    tail_weight = head_total * 0.66 / len(tail)
    for name in tail:
        names.append(name)
        # Rare names are not equally rare: spread them over a 10x range.
        weights.append(tail_weight * rng.uniform(0.2, 2.0))
    cum: list[float] = []
    acc = 0.0
    for w in weights:
        acc += w
        cum.append(acc)
    return names, cum


def forenames(rng: random.Random) -> str:
    pool = FORENAMES_F if rng.random() < 0.5 else FORENAMES_M
    first = rng.choice(pool)
    if rng.random() < 0.35:
        middle = rng.choice(pool)
        return f"{first} {middle}" if middle != first else first
    return first


def postcode(rng: random.Random, area: Area) -> str:
    """A canonical UK postcode ('LS6 2AB') inside the area."""
    district = rng.choice(area.districts)
    unit = rng.choice(_UNIT_LETTERS) + rng.choice(_UNIT_LETTERS)
    return f"{district} {rng.randrange(10)}{unit}"


def nearby_postcode(rng: random.Random, canonical: str) -> str:
    """Same district and sector, different unit: the next street, not the same house."""
    outward, inward = canonical.split(" ")
    while True:
        unit = rng.choice(_UNIT_LETTERS) + rng.choice(_UNIT_LETTERS)
        if unit != inward[1:]:
            return f"{outward} {inward[0]}{unit}"


def postcode_key(text: str | None) -> str | None:
    """Postcodes compare with spacing and case removed."""
    if text is None:
        return None
    key = "".join(text.split()).upper()
    return key or None


def surname_key(text: str | None) -> str | None:
    if text is None:
        return None
    key = text.strip().casefold()
    return key or None


def vrm(rng: random.Random) -> str:
    """A current-style UK registration mark, 'AB12 CDE'."""
    age = rng.choice((7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25))
    age += 50 * (rng.random() < 0.5)
    letters = "".join(rng.choice(_VRM_LETTERS) for _ in range(5))
    return f"{letters[:2]}{age:02d} {letters[2:]}"


def street_address(rng: random.Random) -> str:
    return f"{rng.randint(1, 180)} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)}"
