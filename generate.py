"""Synthetic randomuser.me-shaped datasets, for ``ingest generate``.

``generate_records(count, seed)`` yields records with the same fields, nesting, key order
and value styles as the randomuser.me API (v1.4): names, addresses, logins with hashes,
dates, phones, national ids and picture URLs for a handful of nationalities, including
non-ASCII names. Values come from small built-in pools and one ``random.Random(seed)``,
so a seed always gives the same records, with no clock, no global random state and no
``uuid4``.

``write_dataset(out, count, seed, fmt)`` streams them to a binary file as NDJSON (one
compact object per line) or as the randomuser envelope
``{"results": [...], "info": {...}}``, never holding more than one batch in memory. The
same (count, seed, fmt) always gives byte-identical output.
"""

import base64
import hashlib
import json
import random
import string
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import BinaryIO, Iterator, Optional

import orjson

FORMATS = ("json", "ndjson")
API_VERSION = "1.4"
EMAIL_DOMAIN = "example.com"
PICTURE_URL = "https://randomuser.me/api/portraits/"
WRITE_BATCH = 1000  # records per write() call

# Ages are computed as of this fixed day, so output never depends on the clock.
AS_OF = date(2025, 1, 25)
EPOCH = datetime(1970, 1, 1)
DOB_RANGE_MS = (-946_771_200_000, 1_104_451_200_000)  # 1940-01-01 .. 2004-12-31
REGISTERED_RANGE_MS = (1_009_843_200_000, 1_672_444_800_000)  # 2002-01-01 .. 2022-12-31

SALT_ALTCHARS = b"xQ"  # 8 alphanumeric salt characters from 48 random bits, via base64
UPPER = string.ascii_uppercase
POWERS_OF_TEN = [10**n for n in range(20)]


def _pool(text: str) -> tuple:
    """A pool of values written as ``"a|b|c"``."""
    return tuple(text.split("|"))


def _pick(rng: random.Random, seq):
    """``rng.choice(seq)``, but several times faster (a float draw, no rejection loop)."""
    return seq[int(rng.random() * len(seq))]


def _below(rng: random.Random, n: int) -> int:
    """A random int in [0, n), for n up to 2**53, faster than ``rng.randrange``."""
    return int(rng.random() * n)


MALE_TITLES = ("Mr",)
FEMALE_TITLES = _pool("Mrs|Ms|Miss")

TIMEZONES = (
    ("-12:00", "Eniwetok, Kwajalein"),
    ("-11:00", "Midway Island, Samoa"),
    ("-10:00", "Hawaii"),
    ("-9:00", "Alaska"),
    ("-8:00", "Pacific Time (US & Canada)"),
    ("-7:00", "Mountain Time (US & Canada)"),
    ("-6:00", "Central Time (US & Canada), Mexico City"),
    ("-5:00", "Eastern Time (US & Canada), Bogota, Lima"),
    ("-4:00", "Atlantic Time (Canada), Caracas, La Paz"),
    ("-3:30", "Newfoundland"),
    ("-3:00", "Brazil, Buenos Aires, Georgetown"),
    ("-2:00", "Mid-Atlantic"),
    ("-1:00", "Azores, Cape Verde Islands"),
    ("0:00", "Western Europe Time, London, Lisbon, Casablanca"),
    ("+1:00", "Brussels, Copenhagen, Madrid, Paris"),
    ("+2:00", "Kaliningrad, South Africa"),
    ("+3:00", "Baghdad, Riyadh, Moscow, St. Petersburg"),
    ("+3:30", "Tehran"),
    ("+4:00", "Abu Dhabi, Muscat, Baku, Tbilisi"),
    ("+4:30", "Kabul"),
    ("+5:00", "Ekaterinburg, Islamabad, Karachi, Tashkent"),
    ("+5:30", "Bombay, Calcutta, Madras, New Delhi"),
    ("+5:45", "Kathmandu"),
    ("+6:00", "Almaty, Dhaka, Colombo"),
    ("+7:00", "Bangkok, Hanoi, Jakarta"),
    ("+8:00", "Beijing, Perth, Singapore, Hong Kong"),
    ("+9:00", "Tokyo, Seoul, Osaka, Sapporo, Yakutsk"),
    ("+9:30", "Adelaide, Darwin"),
    ("+10:00", "Eastern Australia, Guam, Vladivostok"),
    ("+11:00", "Magadan, Solomon Islands, New Caledonia"),
    ("+12:00", "Auckland, Wellington, Fiji, Kamchatka"),
)

USERNAME_ADJECTIVES = _pool(
    "happy|sad|angry|lazy|tiny|big|small|heavy|crazy|silver|golden|red|blue|green|"
    "black|white|purple|orange|brown|yellow|ticklish|beautiful|organic"
)
USERNAME_ANIMALS = _pool(
    "bear|bird|butterfly|cat|dog|duck|elephant|fish|frog|goose|gorilla|koala|ladybug|"
    "leopard|lion|meercat|monkey|mouse|ostrich|panda|peacock|rabbit|snake|swan|tiger|wolf|zebra"
)
USERNAME_STEMS = tuple(adj + animal for adj in USERNAME_ADJECTIVES for animal in USERNAME_ANIMALS)
PASSWORDS = _pool(
    "sunshine|qwerty|dragon|monkey|letmein|baseball|shadow|master|hunter|soccer|"
    "harley|ranger|buster|thomas|tigger|robert|hockey|hello|charlie|silver|"
    "jordan|pepper|ginger|cookie|maverick|phoenix|blazer|wizard|falcon|gandalf|"
    "snoopy|voodoo|rocket|1234|password1|trustno1|iloveyou|midnight|sparky|nascar"
)


@dataclass(frozen=True)
class Nationality:
    """The pools and formats for one ``nat``.

    In ``postcode``, ``phone``, ``cell`` and ``id_format``, ``#`` stands for a random digit
    and ``@`` for a random capital letter; a postcode of only ``#`` is written as an int.
    An ``id_format`` of None gives ``{"name": "", "value": null}``, as the API does.
    """

    code: str
    country: str
    first_male: tuple
    first_female: tuple
    last: tuple
    streets: tuple
    cities: tuple
    states: tuple
    postcode: str
    phone: str
    cell: str
    id_name: str
    id_format: Optional[str]
    male_titles: tuple = MALE_TITLES
    female_titles: tuple = FEMALE_TITLES


NATIONALITIES = (
    Nationality(
        "US", "United States",
        _pool("James|Robert|Michael|William|David|Richard|Joseph|Charles|Thomas|Daniel"),
        _pool("Mary|Patricia|Jennifer|Linda|Elizabeth|Barbara|Susan|Jessica|Sarah|Karen"),
        _pool("Smith|Johnson|Williams|Brown|Jones|Miller|Davis|Wilson|Anderson|Taylor"),
        _pool("Main St|Oak Ridge Ln|Pecan Acres Ln|Washington Ave|Lakeview Dr|Cedar St|"
              "Sunset Blvd|Hickory Creek Dr|Valley View Ln|Elm St"),
        _pool("Springfield|Portland|Fairview|Madison|Georgetown|Salem|Franklin|Clinton"),
        _pool("Oregon|Ohio|Texas|Georgia|Virginia|Nevada|Vermont|Kansas|Montana|Iowa"),
        "#####", "(###) ###-####", "(###) ###-####", "SSN", "###-##-####",
    ),
    Nationality(
        "GB", "United Kingdom",
        _pool("Oliver|Harry|George|Jack|Alfie|Charlie|Thomas|Oscar|Henry|Arthur"),
        _pool("Olivia|Amelia|Isla|Ava|Emily|Sophie|Grace|Poppy|Ella|Evie"),
        _pool("Wright|Walker|Hughes|Edwards|Green|Hall|Wood|Clarke|Jackson|Turner"),
        _pool("High Street|Station Road|Church Lane|Victoria Road|Manor Road|Park Lane|"
              "Mill Lane|Kings Road|The Green|Queensway"),
        _pool("Manchester|Leeds|Bristol|Sheffield|Oxford|York|Exeter|Brighton|Derby"),
        _pool("Kent|Devon|Essex|Cumbria|Lancashire|Norfolk|Surrey|Cornwall|Dorset"),
        "@#@ #@@", "0#### ######", "07### ######", "NINO", "@@ ## ## ## @",
    ),
    Nationality(
        "CA", "Canada",
        _pool("Liam|Noah|Ethan|Logan|Lucas|Benjamin|Nathan|Samuel|Félix|Olivier"),
        _pool("Emma|Charlotte|Chloe|Zoey|Léa|Maya|Abigail|Florence|Rosalie|Juliette"),
        _pool("Tremblay|Gagnon|Roy|Côté|Bouchard|Gauthier|Martin|Wilson|Campbell|Lee"),
        _pool("Dufferin St|Yonge St|Bay Ave|Maple Ave|Lakeshore Rd|Robson St|Rue Principale|"
              "Wellington St|King St|Pine Rd"),
        _pool("Toronto|Montréal|Vancouver|Ottawa|Québec|Calgary|Halifax|Regina|Victoria"),
        _pool("Ontario|Québec|Alberta|Manitoba|Nova Scotia|British Columbia|Saskatchewan"),
        "@#@ #@#", "###-###-####", "###-###-####", "SIN", "#########",
    ),
    Nationality(
        "IE", "Ireland",
        _pool("Seán|Conor|Cian|Darragh|Oisín|Patrick|Fionn|Liam|Ciarán|Eoin"),
        _pool("Aoife|Siobhán|Niamh|Saoirse|Róisín|Ciara|Orla|Caoimhe|Aisling|Clodagh"),
        _pool("Murphy|Kelly|O'Sullivan|Walsh|O'Brien|Byrne|Ryan|O'Connor|Doyle|McCarthy"),
        _pool("Main Street|Church Road|Bridge Street|Strand Road|Mill Road|Green Lane|"
              "Castle Street|Abbey Street"),
        _pool("Galway|Cork|Limerick|Kilkenny|Sligo|Athlone|Wexford|Tralee|Drogheda"),
        _pool("Galway|Cork|Kerry|Mayo|Clare|Wicklow|Meath|Louth|Tipperary"),
        "#####", "0##-###-####", "08#-###-####", "PPS", "#######@",
    ),
    Nationality(
        "FR", "France",
        _pool("Lucas|Théo|Noé|Raphaël|Jérôme|Gaël|Hugo|Benoît|Mathéo|Loïc"),
        _pool("Chloé|Léa|Maëlys|Inès|Élodie|Camille|Manon|Océane|Anaïs|Célia"),
        _pool("Dubois|Lefèvre|Garnier|Mercier|Rousseau|Faure|Girard|Bonnet|Lemaire|Chevalier"),
        _pool("Rue de la Paix|Rue Pasteur|Avenue de la République|Boulevard Voltaire|"
              "Rue des Écoles|Place de l'Église|Rue Saint-Honoré|Quai des Célestins"),
        _pool("Lyon|Marseille|Montpellier|Nîmes|Besançon|Orléans|Créteil|Saint-Étienne"),
        _pool("Rhône|Bouches-du-Rhône|Hérault|Gard|Doubs|Loiret|Val-de-Marne|Loire|Ariège"),
        "#####", "0#-##-##-##-##", "06-##-##-##-##", "INSEE", "############# ##",
        male_titles=_pool("Mr|Monsieur"),
    ),
    Nationality(
        "CH", "Switzerland",
        _pool("Luca|Noah|Loïc|Jérémie|Nicolas|Fabian|Reto|Urs|Mathis|Cédric"),
        _pool("Léonie|Anaïs|Céline|Nina|Mélanie|Sarah|Corinne|Flavia|Noémie|Chiara"),
        _pool("Meier|Roux|Brunner|Favre|Perrin|Bühler|Keller|Morel|Gauthier|Zürcher"),
        _pool("Rue de la Gare|Place du Marché|Bahnhofstrasse|Rue du Lac|Avenue des Alpes|"
              "Dorfstrasse|Chemin des Vignes|Rue de l'Industrie"),
        _pool("Genève|Lausanne|Neuchâtel|Sion|Yverdon-les-Bains|Montreux|"
              "La Chaux-de-Fonds|Delémont"),
        _pool("Vaud|Genève|Valais|Neuchâtel|Jura|Bern|Zürich|Ticino|Graubünden"),
        "####", "07# ### ## ##", "07# ### ## ##", "AVS", "756.####.####.##",
        male_titles=_pool("Mr|Monsieur"),
        female_titles=_pool("Madame|Mademoiselle|Mrs|Ms"),
    ),
    Nationality(
        "DE", "Germany",
        _pool("Jürgen|Jörg|Günter|Lukas|Maximilian|Björn|Uwe|Felix|Horst|Tobias"),
        _pool("Käthe|Lena|Hannah|Ute|Gisela|Jördis|Anneliese|Lara|Hildegard|Bärbel"),
        _pool("Müller|Schröder|Weiß|Fuchs|Köhler|Krüger|Becker|Hoffmann|Schäfer|Groß"),
        _pool("Hauptstraße|Schulstraße|Gartenstraße|Bahnhofstraße|Lindenstraße|"
              "Mühlenweg|Kirchplatz|Birkenweg"),
        _pool("München|Köln|Düsseldorf|Lüneburg|Nürnberg|Göttingen|Würzburg|Saarbrücken"),
        _pool("Bayern|Nordrhein-Westfalen|Niedersachsen|Baden-Württemberg|Thüringen|"
              "Saarland|Sachsen|Hessen"),
        "#####", "0###-#######", "017#-#######", "SVNR", "## ###### @ ###",
    ),
    Nationality(
        "DK", "Denmark",
        _pool("Mads|Søren|Jørgen|Frederik|Anders|Rasmus|Mikkel|Bjørn|Jens|Asger"),
        _pool("Sofie|Mathilde|Ida|Line|Maja|Astrid|Signe|Åse|Birgitte|Karoline"),
        _pool("Jensen|Nielsen|Sørensen|Møller|Kjær|Thøgersen|Mortensen|Poulsen|Dahl|Løkke"),
        _pool("Vestergade|Nørrebrogade|Søndergade|Åboulevard|Egevej|Bøgevej|Strandvejen|"
              "Skovvej"),
        _pool("Aarhus|Odense|Aalborg|København K|Helsingør|Næstved|Randers|Ærøskøbing"),
        _pool("Hovedstaden|Midtjylland|Nordjylland|Sjælland|Syddanmark"),
        "####", "########", "########", "CPR", "######-####",
    ),
    Nationality(
        "FI", "Finland",
        _pool("Väinö|Eino|Onni|Jaakko|Juho|Matti|Veeti|Aatu|Elias|Mikko"),
        _pool("Aino|Helmi|Siiri|Elsa|Pihla|Iida|Linnea|Sanni|Eevi|Venla"),
        _pool("Korhonen|Virtanen|Mäkinen|Nieminen|Mäkelä|Hämäläinen|Laine|Heikkinen|"
              "Järvinen|Lehtonen"),
        _pool("Hämeenkatu|Pohjoisesplanadi|Mannerheimintie|Aleksanterinkatu|Tehtaankatu|"
              "Pyynikintie|Satakennankatu|Rautatienkatu"),
        _pool("Helsinki|Espoo|Tampere|Vantaa|Oulu|Turku|Jyväskylä|Hämeenlinna|Seinäjoki"),
        _pool("Uusimaa|Pirkanmaa|Lapland|Ostrobothnia|Kainuu|Satakunta|Päijät-Häme"),
        "#####", "0#-###-###", "04#-###-##-##", "HETU", "######-###@",
    ),
    Nationality(
        "ES", "Spain",
        _pool("José|Álvaro|Jesús|Hugo|Martín|Adrián|Sergio|Rubén|Iván|Andrés"),
        _pool("María|Lucía|Sofía|Paula|Martina|Inés|Noelia|Ángela|Carmen|Nerea"),
        _pool("García|Fernández|González|Rodríguez|López|Martínez|Sánchez|Pérez|Núñez|Peña"),
        _pool("Calle Mayor|Calle de Alcalá|Avenida de América|Paseo del Prado|Calle Real|"
              "Plaza de España|Calle del Sol|Avenida de Andalucía"),
        _pool("Madrid|Sevilla|Málaga|Córdoba|Zaragoza|Valencia|Alicante|Cádiz|Logroño"),
        _pool("Andalucía|Aragón|Cataluña|Galicia|Castilla y León|Comunidad de Madrid|"
              "País Vasco|Región de Murcia"),
        "#####", "9##-###-###", "6##-###-###", "DNI", "########-@",
    ),
    Nationality(
        "BR", "Brazil",
        _pool("João|Gabriel|Lucas|Matheus|Guilherme|Rafael|Thiago|Gonçalo|Caetano|Vinícius"),
        _pool("Ana|Júlia|Beatriz|Larissa|Letícia|Conceição|Lívia|Fernanda|Mônica|Débora"),
        _pool("da Silva|dos Santos|Oliveira|Souza|Pereira|Araújo|Gonçalves|Ribeiro|"
              "Barbosa|da Cunha"),
        _pool("Rua São Jorge|Avenida Brasil|Rua das Flores|Rua Sete de Setembro|"
              "Rua Quinze de Novembro|Avenida Paulista|Rua Bela Vista|Rua Tiradentes"),
        _pool("São Paulo|Belo Horizonte|Curitiba|Florianópolis|Maceió|Uberlândia|"
              "Niterói|Goiânia"),
        _pool("São Paulo|Minas Gerais|Paraná|Santa Catarina|Alagoas|Pará|Maranhão|Ceará"),
        "#####", "(##) ####-####", "(##) 9####-####", "CPF", "###.###.###-##",
    ),
    Nationality(
        "TR", "Turkey",
        _pool("Emre|Çağlar|Oğuz|Barış|Kerem|İsmail|Tuğrul|Şükrü|Ömer|Yiğit"),
        _pool("Elif|Gülşen|Şebnem|Ayşe|Özge|Dilara|Büşra|Nazlı|İpek|Çiğdem"),
        _pool("Yılmaz|Öztürk|Şahin|Çelik|Aydın|Kılıç|Doğan|Güneş|Koç|Erdoğan"),
        _pool("Atatürk Cd|Cumhuriyet Cd|Bağdat Cd|İstiklal Cd|Şehitler Cd|Vatan Cd|"
              "Menderes Cd|Fatih Sultan Mehmet Cd"),
        _pool("İstanbul|Ankara|İzmir|Eskişehir|Muğla|Şanlıurfa|Çanakkale|Diyarbakır"),
        _pool("Bursa|Antalya|Kocaeli|Gaziantep|Kütahya|Aydın|Tekirdağ|Çorum"),
        "#####", "(###)-###-####", "(###)-###-####", "", None,
    ),
    Nationality(
        "NL", "Netherlands",
        _pool("Daan|Sem|Bram|Thijs|Joël|Sven|Ruben|Jesse|Stijn|Niels"),
        _pool("Sanne|Femke|Anouk|Lotte|Noëlle|Fleur|Iris|Mirjam|Esmée|Britt"),
        _pool("de Jong|Jansen|de Vries|van den Berg|Bakker|Visser|Smit|Meijer|de Boer|Mulder"),
        _pool("Kerkstraat|Dorpsstraat|Molenweg|Stationsweg|Julianastraat|Schoolstraat|"
              "Prinsengracht|Beukenlaan"),
        _pool("Utrecht|Haarlem|Zwolle|Leiden|Groningen|Tilburg|Breda|Delft|Enschede"),
        _pool("Utrecht|Noord-Holland|Overijssel|Zuid-Holland|Groningen|Noord-Brabant|Gelderland"),
        "#### @@", "(0##) #######", "(06) ########", "BSN", "########",
    ),
    Nationality(
        "MX", "Mexico",
        _pool("Alejandro|Sebastián|Emiliano|Santiago|Joaquín|Ramón|Héctor|Julián|Raúl|Óscar"),
        _pool("Ximena|Valentina|Renata|Guadalupe|Itzel|Mónica|Verónica|Araceli|Beatriz|Sofía"),
        _pool("Hernández|Ramírez|Cruz|Morales|Ortiz|Gutiérrez|Chávez|Ibarra|Montaño|Velázquez"),
        _pool("Calle Hidalgo|Avenida Juárez|Calle Morelos|Boulevard Zaragoza|Cerrada Allende|"
              "Privada Madero|Andador Guerrero|Calzada Obregón"),
        _pool("Guadalajara|Puebla|Mérida|Querétaro|León|Toluca|Mazatlán|Tepic|Cancún"),
        _pool("Jalisco|Puebla|Yucatán|Querétaro|Guanajuato|Sinaloa|Nayarit|Michoacán|Sonora"),
        "#####", "(###) ### ####", "(###) ### ####", "NSS", "## ## ## #### #",
    ),
)

# Characters NFKD does not reduce to ASCII, for email addresses.
_ASCII_FOLD = str.maketrans({"ø": "o", "Ø": "O", "æ": "ae", "Æ": "Ae", "ß": "ss", "ı": "i",
                             "đ": "d", "ł": "l"})


def _ascii_slug(text: str) -> str:
    """``"Sørensen"`` -> ``"sorensen"``, ``"da Silva"`` -> ``"dasilva"``: for emails."""
    folded = unicodedata.normalize("NFKD", text.translate(_ASCII_FOLD))
    return "".join(ch for ch in folded.lower() if ch.isascii() and ch.isalnum())


def _slugs_of_all_names() -> dict:
    names = set()
    for nat in NATIONALITIES:
        names.update(nat.first_male, nat.first_female, nat.last)
    return {name: _ascii_slug(name) for name in names}


SLUGS = _slugs_of_all_names()


MAX_PATTERN_DIGITS = 15  # one float draw gives this many random digits


@dataclass(frozen=True)
class _Pattern:
    """A ``#``/``@`` pattern compiled to a ``str.format`` template.

    ``"(###) @#"`` becomes ``"({0}{1}{2}) {4}{3}"``: fields 0.. take the digits, then come
    the letters, so one fill is a single format call over one string of random characters.
    """

    template: str
    digits: int
    letters: int


def _compile_pattern(pattern: str) -> _Pattern:
    digits = pattern.count("#")
    if digits > MAX_PATTERN_DIGITS:
        raise ValueError(f"pattern {pattern!r} has more than {MAX_PATTERN_DIGITS} digits")
    template, next_digit, next_letter = [], 0, digits
    for ch in pattern:
        if ch == "#":
            template.append("{%d}" % next_digit)
            next_digit += 1
        elif ch == "@":
            template.append("{%d}" % next_letter)
            next_letter += 1
        else:
            template.append(ch.replace("{", "{{").replace("}", "}}"))
    return _Pattern("".join(template), digits, next_letter - digits)


def _fill(rng: random.Random, pattern: _Pattern) -> str:
    chars = "%0*d" % (pattern.digits, _below(rng, POWERS_OF_TEN[pattern.digits]))
    if pattern.letters:
        chars += "".join([_pick(rng, UPPER) for _ in range(pattern.letters)])
    return pattern.template.format(*chars)


@dataclass(frozen=True)
class _Formats:
    """One nationality's patterns, compiled once."""

    postcode: _Pattern
    postcode_is_int: bool
    phone: _Pattern
    cell: _Pattern
    id_value: Optional[_Pattern]


def _compile_formats(nat: Nationality) -> _Formats:
    return _Formats(
        postcode=_compile_pattern(nat.postcode),
        postcode_is_int=set(nat.postcode) == {"#"},
        phone=_compile_pattern(nat.phone),
        cell=_compile_pattern(nat.cell),
        id_value=_compile_pattern(nat.id_format) if nat.id_format is not None else None,
    )


FORMATS_BY_NAT = {nat.code: _compile_formats(nat) for nat in NATIONALITIES}


def _postcode(rng: random.Random, formats: _Formats):
    """An int for all-digit formats (never with a leading zero), else a string."""
    if formats.postcode_is_int:
        low = POWERS_OF_TEN[formats.postcode.digits - 1]
        return low + _below(rng, 9 * low)
    return _fill(rng, formats.postcode)


def _uuid(rng: random.Random) -> str:
    """A version-4-shaped UUID string from the rng (not ``uuid4``, which is not seeded)."""
    h = "%032x" % rng.getrandbits(128)
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


def _timestamp(rng: random.Random, span_ms: tuple) -> dict:
    """``{"date": ISO-8601 with milliseconds, "age": whole years as of AS_OF}``."""
    start, end = span_ms
    moment = EPOCH + timedelta(milliseconds=start + _below(rng, end - start))
    age = AS_OF.year - moment.year - ((AS_OF.month, AS_OF.day) < (moment.month, moment.day))
    return {"date": moment.isoformat(timespec="milliseconds") + "Z", "age": age}


def _name(rng: random.Random, nat: Nationality, gender: str) -> dict:
    if gender == "male":
        title, first = _pick(rng, nat.male_titles), _pick(rng, nat.first_male)
    else:
        title, first = _pick(rng, nat.female_titles), _pick(rng, nat.first_female)
    return {"title": title, "first": first, "last": _pick(rng, nat.last)}


def _location(rng: random.Random, nat: Nationality, formats: _Formats) -> dict:
    offset, description = _pick(rng, TIMEZONES)
    return {
        "street": {"number": 1 + _below(rng, 9999), "name": _pick(rng, nat.streets)},
        "city": _pick(rng, nat.cities),
        "state": _pick(rng, nat.states),
        "country": nat.country,
        "postcode": _postcode(rng, formats),
        "coordinates": {
            "latitude": "%.4f" % (rng.random() * 180.0 - 90.0),
            "longitude": "%.4f" % (rng.random() * 360.0 - 180.0),
        },
        "timezone": {"offset": offset, "description": description},
    }


def _login(rng: random.Random) -> dict:
    """Credentials; the digests are of password + salt, as on randomuser.me."""
    password = _pick(rng, PASSWORDS)
    salt = base64.b64encode(rng.getrandbits(48).to_bytes(6, "big"), SALT_ALTCHARS).decode()
    salted = (password + salt).encode()
    return {
        "uuid": _uuid(rng),
        "username": "%s%d" % (_pick(rng, USERNAME_STEMS), 100 + _below(rng, 900)),
        "password": password,
        "salt": salt,
        "md5": hashlib.md5(salted).hexdigest(),
        "sha1": hashlib.sha1(salted).hexdigest(),
        "sha256": hashlib.sha256(salted).hexdigest(),
    }


def _national_id(rng: random.Random, nat: Nationality, formats: _Formats) -> dict:
    if formats.id_value is None:
        return {"name": "", "value": None}
    return {"name": nat.id_name, "value": _fill(rng, formats.id_value)}


def _picture(rng: random.Random, gender: str) -> dict:
    tail = "%s/%d.jpg" % ("men" if gender == "male" else "women", _below(rng, 100))
    return {
        "large": PICTURE_URL + tail,
        "medium": PICTURE_URL + "med/" + tail,
        "thumbnail": PICTURE_URL + "thumb/" + tail,
    }


def _record(rng: random.Random) -> dict:
    nat = _pick(rng, NATIONALITIES)
    formats = FORMATS_BY_NAT[nat.code]
    gender = "male" if rng.random() < 0.5 else "female"
    name = _name(rng, nat, gender)
    return {
        "gender": gender,
        "name": name,
        "location": _location(rng, nat, formats),
        "email": f"{SLUGS[name['first']]}.{SLUGS[name['last']]}@{EMAIL_DOMAIN}",
        "login": _login(rng),
        "dob": _timestamp(rng, DOB_RANGE_MS),
        "registered": _timestamp(rng, REGISTERED_RANGE_MS),
        "phone": _fill(rng, formats.phone),
        "cell": _fill(rng, formats.cell),
        "id": _national_id(rng, nat, formats),
        "picture": _picture(rng, gender),
        "nat": nat.code,
    }


def generate_records(count: int, seed: int) -> Iterator[dict]:
    """Yield ``count`` randomuser.me-shaped records; the same seed gives the same records."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    return _records(random.Random(seed), count)


def _records(rng: random.Random, count: int) -> Iterator[dict]:
    for _ in range(count):
        yield _record(rng)


def info_seed(seed: int) -> str:
    """The envelope's ``info.seed``: 16 hex characters derived from the seed."""
    return hashlib.sha256(b"durable-ingest:%d" % seed).hexdigest()[:16]


def _write_ndjson(out: BinaryIO, records: Iterator[dict]) -> int:
    written, batch = 0, []
    for record in records:
        batch.append(orjson.dumps(record))
        if len(batch) == WRITE_BATCH:
            out.write(b"\n".join(batch) + b"\n")
            written += len(batch)
            batch = []
    if batch:
        out.write(b"\n".join(batch) + b"\n")
        written += len(batch)
    return written


def _write_envelope(out: BinaryIO, records: Iterator[dict], count: int, seed: int) -> int:
    out.write(b'{"results": [')
    written, batch = 0, []
    for record in records:
        batch.append(orjson.dumps(record))
        if len(batch) == WRITE_BATCH:
            out.write((b", " if written else b"") + b", ".join(batch))
            written += len(batch)
            batch = []
    if batch:
        out.write((b", " if written else b"") + b", ".join(batch))
        written += len(batch)
    info = {"seed": info_seed(seed), "results": count, "page": 1, "version": API_VERSION}
    out.write(b'], "info": ' + json.dumps(info).encode() + b"}\n")
    return written


def write_dataset(out: BinaryIO, count: int, seed: int, fmt: str) -> int:
    """Stream ``count`` records for ``seed`` to ``out`` as ``fmt``; return how many were written.

    "ndjson" writes one compact JSON object per line; "json" writes the randomuser envelope
    ``{"results": [...], "info": {...}}``. Output is byte-identical for the same arguments.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    records = generate_records(count, seed)
    if fmt == "ndjson":
        return _write_ndjson(out, records)
    return _write_envelope(out, records, count, seed)
