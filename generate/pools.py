"""The value pools of ``generate.datasets``: per nationality the first and last names, places,
phone, postcode and national-id formats of randomuser.me (v1.4), and the titles, time zones,
usernames and passwords every record draws from. Data only: the drawing is in ``generate.datasets``."""

import unicodedata
from dataclasses import dataclass
from typing import Optional


def _pool(text: str) -> tuple:
    """A pool of values written as ``"a|b|c"``."""
    return tuple(text.split("|"))


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
