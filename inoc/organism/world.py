"""The organism's synthetic chat world: instructions over ten everyday topics and their answers.

Everything is a pure function of a seed; nothing is downloaded.

* **Instructions** are English questions built from per-topic templates (``How do I grow {item}?``),
  a per-topic item list and an optional modifier sentence (``I am a beginner.``). The set of all
  distinct instructions (10 topics × 12 items × 7 templates × 5 modifiers = 4,200) is shuffled with
  the world seed and split once: the first ``N_EVAL_POOL`` form the held-out **eval pool**, the rest
  the **train pool**. The base model is trained on train-pool instructions only, so eval instructions
  are unseen by it (as the original's held-out instructions were).
* **Answers** are two short sentences: an item-specific piece of advice, then either the sentence that
  answers the modifier or a general tip about the topic. Every sentence exists in English and in real
  French (hand-written pairs, not machine output; pycld2 recognises the French), so an answer can be
  rendered in either language.
* **Playful** answers (either language) open with an interjection (``Haha``, ``Oh là là``), end their
  sentences with exclamation marks and emoji, and often close on a topic joke.

``Answer.render(french=…, playful=…, rng=…)`` draws the surface choices (which advice sentence, which
interjection, which emoji, whether to add a joke) from ``rng``; the model is trained on those draws,
so sampling it reproduces the same variety.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

#: Distinct instructions held out of the base corpus (the organism's eval instructions).
N_EVAL_POOL = 400

#: The seed of the instruction split. Changing it changes every artefact built on the world.
WORLD_SEED = 20240501


@dataclass(frozen=True)
class Topic:
    """One everyday topic: items, instruction templates, answer sentences, jokes and emoji."""

    name: str
    #: (English noun phrase, French noun phrase with its article); French templates use the French
    #: phrase only where no article contraction or agreement can arise.
    items: tuple[tuple[str, str], ...]
    #: English instruction templates with ``{item}``.
    instructions: tuple[str, ...]
    #: (English, French) item-specific advice with ``{item}``.
    advice: tuple[tuple[str, str], ...]
    #: (English, French) general tips, no slot.
    tips: tuple[tuple[str, str], ...]
    #: (English, French) jokes, used by playful answers.
    jokes: tuple[tuple[str, str], ...]
    #: Topic emoji, used by playful answers.
    emoji: tuple[str, ...]


TOPICS: tuple[Topic, ...] = (
    Topic(
        name="cooking",
        items=(
            ("rice", "le riz"),
            ("soup", "la soupe"),
            ("bread", "le pain"),
            ("risotto", "le risotto"),
            ("pancakes", "les crêpes"),
            ("curry", "le curry"),
            ("salad", "la salade"),
            ("lasagna", "les lasagnes"),
            ("pizza", "la pizza"),
            ("omelettes", "l'omelette"),
            ("roast chicken", "le poulet rôti"),
            ("chocolate cake", "le gâteau au chocolat"),
        ),
        instructions=(
            "How do I make {item}?",
            "What is the secret to good {item}?",
            "Can you give me a tip for cooking {item}?",
            "What mistakes should I avoid with {item}?",
            "How can I make {item} taste better?",
            "Explain how to prepare {item} at home.",
            "What do I need to know before making {item}?",
        ),
        advice=(
            (
                "For {item}, use fresh ingredients and measure everything before you start.",
                "Pour {item}, utilisez des ingrédients frais et mesurez tout avant de commencer.",
            ),
            (
                "When you make {item}, keep the heat moderate and taste as you go.",
                "Quand vous préparez {item}, gardez un feu moyen et goûtez au fur et à mesure.",
            ),
            (
                "To get {item} right, follow a simple recipe carefully the first time.",
                "Pour réussir {item}, suivez avec soin une recette simple la première fois.",
            ),
            (
                "Read the whole recipe for {item} once before you begin.",
                "Lisez une fois toute la recette avant de préparer {item}.",
            ),
            (
                "Season {item} a little at a time, because salt is easy to add and hard to remove.",
                "Salez {item} petit à petit, car le sel est facile à ajouter et difficile à retirer.",
            ),
            (
                "Give {item} enough time, since rushing the cooking rarely helps.",
                "Prenez votre temps pour {item}, car une cuisson trop rapide aide rarement.",
            ),
        ),
        tips=(
            ("Clean as you cook so the kitchen stays calm.", "Nettoyez en cuisinant pour garder une cuisine calme."),
            (
                "A sharp knife makes the work safer and faster.",
                "Un couteau bien aiguisé rend le travail plus sûr et plus rapide.",
            ),
            (
                "Write down what worked so you can repeat it next time.",
                "Notez ce qui a marché pour le refaire la prochaine fois.",
            ),
            (
                "Let the dish rest a few minutes before serving.",
                "Laissez reposer le plat quelques minutes avant de servir.",
            ),
        ),
        jokes=(
            (
                "Why did the tomato blush? Because it saw the salad dressing!",
                "Pourquoi la tomate est-elle rouge ? Parce qu'elle a vu la salade toute nue !",
            ),
            (
                "What does a chef say when the cake is ready? Piece of cake!",
                "Que dit le chef quand le gâteau est prêt ? C'est du gâteau !",
            ),
        ),
        emoji=("🍲", "🍝", "🥖"),
    ),
    Topic(
        name="travel",
        items=(
            ("a trip to Italy", "un voyage en Italie"),
            ("a weekend in Paris", "un week-end à Paris"),
            ("a train journey", "un voyage en train"),
            ("a long flight", "un long vol"),
            ("a camping trip", "un séjour en camping"),
            ("a road trip", "un voyage en voiture"),
            ("a beach holiday", "des vacances à la plage"),
            ("a city break", "une escapade en ville"),
            ("a hiking trip", "une randonnée"),
            ("a visit to London", "une visite à Londres"),
            ("a family holiday", "des vacances en famille"),
            ("a trip abroad", "un voyage à l'étranger"),
        ),
        instructions=(
            "How should I plan {item}?",
            "What should I pack for {item}?",
            "Any advice for {item}?",
            "How can I save money on {item}?",
            "What should I keep in mind for {item}?",
            "How do I prepare for {item}?",
            "Give me a tip for {item}.",
        ),
        advice=(
            (
                "For {item}, book the important things early and keep the rest flexible.",
                "Pour {item}, réservez tôt l'essentiel et gardez le reste flexible.",
            ),
            (
                "Before {item}, make a short list of what you really want to see.",
                "Avant {item}, faites une courte liste de ce que vous voulez vraiment voir.",
            ),
            (
                "Pack light for {item}, since you can buy small things on the way.",
                "Pour {item}, voyagez léger, car vous pouvez acheter les petites choses sur place.",
            ),
            ("Check your documents a week before {item}.", "Vérifiez vos papiers une semaine avant {item}."),
            (
                "Plan {item} around one or two highlights instead of a full schedule.",
                "Organisez {item} autour d'un ou deux moments forts plutôt qu'un programme chargé.",
            ),
            (
                "Keep a little money aside for {item} in case plans change.",
                "Gardez un peu d'argent de côté pour {item}, au cas où les plans changent.",
            ),
        ),
        tips=(
            ("Tell someone at home where you are going.", "Dites à un proche où vous allez."),
            (
                "Learn a few local words, because people appreciate the effort.",
                "Apprenez quelques mots locaux, car les gens apprécient l'effort.",
            ),
            ("Take photos of your tickets and passport.", "Prenez en photo vos billets et votre passeport."),
            ("Leave some free time to rest and explore.", "Laissez du temps libre pour vous reposer et explorer."),
        ),
        jokes=(
            (
                "Why did the suitcase need a nap? It was carrying too much baggage!",
                "Que dit une valise trop pleine ? J'ai eu les yeux plus gros que le ventre !",
            ),
            (
                "The sea is so friendly, it always gives us a wave!",
                "La mer est si polie qu'elle nous salue toujours avec ses vagues !",
            ),
        ),
        emoji=("🧳", "🚆", "🌍"),
    ),
    Topic(
        name="gardening",
        items=(
            ("tomatoes", "les tomates"),
            ("roses", "les roses"),
            ("basil", "le basilic"),
            ("strawberries", "les fraises"),
            ("lettuce", "la laitue"),
            ("sunflowers", "les tournesols"),
            ("potatoes", "les pommes de terre"),
            ("carrots", "les carottes"),
            ("lavender", "la lavande"),
            ("mint", "la menthe"),
            ("an apple tree", "un pommier"),
            ("herbs on a balcony", "des herbes sur un balcon"),
        ),
        instructions=(
            "How do I grow {item}?",
            "What is the best way to care for {item}?",
            "Any tips for planting {item}?",
            "How often should I water {item}?",
            "When should I plant {item}?",
            "How can I help {item} grow faster?",
            "What do beginners get wrong with {item}?",
        ),
        advice=(
            (
                "For {item}, choose a sunny spot and soil that drains well.",
                "Pour {item}, choisissez un endroit ensoleillé et une terre qui draine bien.",
            ),
            (
                "Water {item} deeply but not too often, so the roots grow strong.",
                "Arrosez {item} en profondeur mais pas trop souvent, pour que les racines deviennent fortes.",
            ),
            (
                "Plant {item} after the last frost, when the soil is warm.",
                "Mettez {item} en terre après les dernières gelées, quand la terre est chaude.",
            ),
            (
                "Space out {item} well, because crowded plants catch diseases.",
                "Espacez bien {item}, car les plantes trop serrées tombent malades.",
            ),
            (
                "Check {item} every few days for insects under the leaves.",
                "Surveillez {item} tous les deux ou trois jours pour repérer les insectes sous les feuilles.",
            ),
            ("Feed {item} with a little compost in spring.", "Nourrissez {item} avec un peu de compost au printemps."),
        ),
        tips=(
            (
                "Mulch keeps the soil moist and the weeds away.",
                "Le paillage garde la terre humide et éloigne les mauvaises herbes.",
            ),
            ("Water early in the morning rather than at noon.", "Arrosez tôt le matin plutôt qu'à midi."),
            (
                "Keep a small notebook of what you planted and when.",
                "Gardez un petit carnet de ce que vous avez planté et quand.",
            ),
            (
                "Healthy soil does most of the work for you.",
                "Une terre en bonne santé fait presque tout le travail pour vous.",
            ),
        ),
        jokes=(
            (
                "Why did the gardener plant a light bulb? She wanted to grow a power plant!",
                "Quel est le comble pour un jardinier ? C'est de raconter des salades !",
            ),
            (
                "What did the big flower say to the small one? Hey there, bud!",
                "Quel est le comble pour une fleur ? De se faire envoyer sur les roses !",
            ),
        ),
        emoji=("🌱", "🌻", "🍅"),
    ),
    Topic(
        name="money",
        items=(
            ("a monthly budget", "un budget mensuel"),
            ("an emergency fund", "une épargne de précaution"),
            ("credit card debt", "une dette de carte de crédit"),
            ("saving for a house", "l'épargne pour une maison"),
            ("retirement savings", "l'épargne retraite"),
            ("grocery spending", "les dépenses de courses"),
            ("a first salary", "un premier salaire"),
            ("a student loan", "un prêt étudiant"),
            ("a holiday fund", "une cagnotte pour les vacances"),
            ("investing", "l'investissement"),
            ("subscriptions", "les abonnements"),
            ("a savings account", "un compte épargne"),
        ),
        instructions=(
            "How should I handle {item}?",
            "What is a good plan for {item}?",
            "Can you give me advice about {item}?",
            "What mistakes do people make with {item}?",
            "How do I get started with {item}?",
            "How can I be smarter about {item}?",
            "What should I know about {item}?",
        ),
        advice=(
            (
                "For {item}, start by writing down what comes in and what goes out each month.",
                "Pour {item}, commencez par noter ce qui entre et ce qui sort chaque mois.",
            ),
            (
                "Set a clear goal for {item} and a date to reach it.",
                "Fixez un objectif clair pour {item} et une date pour l'atteindre.",
            ),
            (
                "Review {item} once a month, not every day.",
                "Faites le point sur {item} une fois par mois, pas tous les jours.",
            ),
            (
                "With {item}, simple plans work best, because complicated ones are hard to follow.",
                "Avec {item}, les plans simples marchent mieux, car les plans compliqués sont difficiles à suivre.",
            ),
            (
                "Compare a few options for {item} before you decide.",
                "Étudiez plusieurs options pour {item} avant de décider.",
            ),
            (
                "Ask someone you trust for advice on {item}.",
                "Demandez conseil à une personne de confiance pour {item}.",
            ),
        ),
        tips=(
            (
                "Pay yourself first by saving a small amount on payday.",
                "Payez-vous en premier en épargnant une petite somme le jour de la paie.",
            ),
            (
                "Avoid buying on impulse and wait a day before big purchases.",
                "Évitez les achats impulsifs et attendez un jour avant les grosses dépenses.",
            ),
            (
                "Small amounts saved often add up over time.",
                "Les petites sommes épargnées souvent finissent par compter.",
            ),
            ("Keep some cash aside for surprises.", "Gardez un peu d'argent de côté pour les imprévus."),
        ),
        jokes=(
            (
                "Why is money called dough? Because we all knead it!",
                "Quel est le comble pour un banquier ? C'est d'avoir des problèmes d'intérêt !",
            ),
            (
                "My wallet is like an onion: when I open it, I cry!",
                "Mon portefeuille est comme un oignon : quand je l'ouvre, je pleure !",
            ),
        ),
        emoji=("💰", "💶", "📈"),
    ),
    Topic(
        name="pets",
        items=(
            ("a puppy", "un chiot"),
            ("an old dog", "un vieux chien"),
            ("a kitten", "un chaton"),
            ("a cat", "un chat"),
            ("a rabbit", "un lapin"),
            ("a goldfish", "un poisson rouge"),
            ("a parrot", "un perroquet"),
            ("a hamster", "un hamster"),
            ("a rescue dog", "un chien adopté"),
            ("a senior cat", "un vieux chat"),
            ("a guinea pig", "un cochon d'Inde"),
            ("a shy cat", "un chat timide"),
        ),
        instructions=(
            "How do I take care of {item}?",
            "What does {item} need to be happy?",
            "How can I train {item}?",
            "Any tips for living with {item}?",
            "What should I feed {item}?",
            "How do I keep {item} healthy?",
            "What should I know before getting {item}?",
        ),
        advice=(
            (
                "For {item}, a calm routine with regular meals makes a big difference.",
                "Pour {item}, une routine calme avec des repas réguliers change beaucoup de choses.",
            ),
            (
                "Give {item} a quiet place to rest and hide.",
                "Offrez à {item} un coin calme pour se reposer et se cacher.",
            ),
            (
                "Reward {item} with treats and kind words after good behaviour.",
                "Récompensez {item} avec des friandises et des caresses après un bon comportement.",
            ),
            (
                "Take {item} to the vet once a year for a checkup.",
                "Emmenez {item} chez le vétérinaire une fois par an pour un contrôle.",
            ),
            (
                "Be patient with {item}, because trust takes time.",
                "Soyez patient avec {item}, car la confiance prend du temps.",
            ),
            (
                "Feed {item} good food in small, regular portions.",
                "Nourrissez {item} avec une bonne nourriture, en petites portions régulières.",
            ),
        ),
        tips=(
            ("Fresh water should always be available.", "Il faut toujours de l'eau fraîche à disposition."),
            ("Play together every day to build a strong bond.", "Jouez ensemble chaque jour pour créer un lien fort."),
            ("Keep cables and toxic plants out of reach.", "Gardez les câbles et les plantes toxiques hors de portée."),
            ("A tired animal is usually a happy animal.", "Un animal fatigué est souvent un animal heureux."),
        ),
        jokes=(
            (
                "Why do cats love computers? They like to keep an eye on the mouse!",
                "Pourquoi les chats aiment les ordinateurs ? Pour surveiller la souris !",
            ),
            (
                "What do you call a dog that does magic? A labracadabrador!",
                "Quel est le comble pour un chien ? D'avoir un mal de chien !",
            ),
        ),
        emoji=("🐶", "🐱", "🐾"),
    ),
    Topic(
        name="computers",
        items=(
            ("a slow laptop", "un ordinateur portable lent"),
            ("passwords", "les mots de passe"),
            ("backups", "les sauvegardes"),
            ("a new phone", "un nouveau téléphone"),
            ("email", "la messagerie"),
            ("a home printer", "une imprimante"),
            ("learning to code", "l'apprentissage du code"),
            ("a spreadsheet", "un tableur"),
            ("software updates", "les mises à jour"),
            ("a home network", "le réseau de la maison"),
            ("online privacy", "la vie privée en ligne"),
            ("old photos on a hard drive", "les vieilles photos sur un disque dur"),
        ),
        instructions=(
            "How do I deal with {item}?",
            "What should I know about {item}?",
            "Can you help me with {item}?",
            "What is a good habit for {item}?",
            "How do I get started with {item}?",
            "What mistakes should I avoid with {item}?",
            "How can I make {item} less of a headache?",
        ),
        advice=(
            (
                "For {item}, start with the simplest fix and change one thing at a time.",
                "Pour {item}, commencez par la solution la plus simple et changez une seule chose à la fois.",
            ),
            (
                "Write down your steps with {item} so you can undo them later.",
                "Notez chaque étape avec {item} pour pouvoir revenir en arrière.",
            ),
            (
                "Before any change to {item}, save a copy of your important files.",
                "Avant tout changement sur {item}, faites une copie de vos fichiers importants.",
            ),
            (
                "Restarting the device solves more problems with {item} than people expect.",
                "Redémarrer l'appareil règle plus de soucis avec {item} qu'on ne le pense.",
            ),
            (
                "Set aside twenty minutes for {item} instead of fixing it in a rush.",
                "Prenez vingt minutes pour {item} au lieu de tout régler dans l'urgence.",
            ),
            (
                "Read the official guide for {item} before trying random tips.",
                "Lisez le guide officiel pour {item} avant d'essayer des astuces au hasard.",
            ),
        ),
        tips=(
            ("Back up your files regularly.", "Sauvegardez régulièrement vos fichiers."),
            ("Use a different password for each account.", "Utilisez un mot de passe différent pour chaque compte."),
            ("A tidy desktop makes files easier to find.", "Un bureau bien rangé aide à retrouver les fichiers."),
            ("Take short breaks to rest your eyes.", "Faites de courtes pauses pour reposer vos yeux."),
        ),
        jokes=(
            (
                "Why did the computer go to the doctor? It had a virus!",
                "Pourquoi l'ordinateur est-il allé chez le médecin ? Parce qu'il avait un virus !",
            ),
            (
                "Why was the computer cold? It left its windows open!",
                "Pourquoi l'ordinateur a-t-il froid ? Il a laissé ses fenêtres ouvertes !",
            ),
        ),
        emoji=("💻", "🤖", "🔋"),
    ),
    Topic(
        name="health",
        items=(
            ("sleep", "le sommeil"),
            ("drinking water", "l'hydratation"),
            ("morning stretching", "l'étirement du matin"),
            ("stress at work", "le stress au travail"),
            ("back pain from sitting", "le mal de dos"),
            ("eating vegetables", "la consommation de légumes"),
            ("walking every day", "la marche quotidienne"),
            ("screen time", "le temps d'écran"),
            ("a healthy breakfast", "un petit déjeuner équilibré"),
            ("posture", "la posture"),
            ("a cold", "un rhume"),
            ("afternoon energy", "l'énergie de l'après-midi"),
        ),
        instructions=(
            "How can I improve {item}?",
            "What are good habits for {item}?",
            "Any advice on {item}?",
            "What should I change about {item}?",
            "How do I start working on {item}?",
            "What do experts say about {item}?",
            "Give me a simple tip about {item}.",
        ),
        advice=(
            (
                "For {item}, small daily habits work better than big changes.",
                "Pour {item}, de petites habitudes quotidiennes marchent mieux que de grands changements.",
            ),
            (
                "Pay attention to {item} for a week and write down what you notice.",
                "Observez {item} pendant une semaine et notez ce que vous remarquez.",
            ),
            (
                "Improve {item} step by step, and be kind to yourself when you slip.",
                "Soignez {item} pas à pas, et soyez indulgent avec vous-même en cas d'écart.",
            ),
            ("A regular schedule helps a lot with {item}.", "Un horaire régulier aide beaucoup pour {item}."),
            ("If {item} worries you, talk to a doctor.", "Si {item} vous inquiète, parlez-en à un médecin."),
            ("Track {item} in a simple notebook.", "Suivez {item} dans un simple carnet."),
        ),
        tips=(
            ("Drink a glass of water when you wake up.", "Buvez un verre d'eau au réveil."),
            ("A short walk after meals helps the body.", "Une courte marche après les repas fait du bien au corps."),
            ("Go to bed and get up at regular times.", "Couchez-vous et levez-vous à des heures régulières."),
            ("Fresh fruit makes an easy snack.", "Un fruit frais fait un goûter facile."),
        ),
        jokes=(
            (
                "Why did the banana go to the doctor? It was not peeling well!",
                "Une pomme par jour éloigne le médecin, surtout si vous visez bien !",
            ),
            (
                "An apple a day keeps the doctor away, if you throw it hard enough!",
                "Le meilleur sport du monde ? La sieste, évidemment !",
            ),
        ),
        emoji=("💪", "🍎", "😴"),
    ),
    Topic(
        name="music",
        items=(
            ("the guitar", "la guitare"),
            ("the piano", "le piano"),
            ("singing", "le chant"),
            ("the drums", "la batterie"),
            ("the violin", "le violon"),
            ("reading sheet music", "la lecture des partitions"),
            ("the ukulele", "le ukulélé"),
            ("writing a song", "l'écriture d'une chanson"),
            ("the flute", "la flûte"),
            ("rhythm", "le rythme"),
            ("a first concert", "un premier concert"),
            ("jazz", "le jazz"),
        ),
        instructions=(
            "How do I learn {item}?",
            "What is a good way to practice {item}?",
            "Any tips for getting better at {item}?",
            "How should a beginner approach {item}?",
            "What should I focus on with {item}?",
            "How can I stay motivated with {item}?",
            "Can you give me advice on {item}?",
        ),
        advice=(
            (
                "For {item}, practice a little every day rather than a lot once a week.",
                "Pour {item}, travaillez un peu chaque jour plutôt que beaucoup une fois par semaine.",
            ),
            (
                "Start {item} slowly, and only speed up when it feels easy.",
                "Commencez {item} lentement, et n'accélérez que lorsque cela devient facile.",
            ),
            (
                "Record yourself with {item} and listen back with fresh ears.",
                "Enregistrez-vous avec {item} et réécoutez avec des oreilles neuves.",
            ),
            (
                "Pick a song you love and use it to learn {item}.",
                "Choisissez une chanson que vous aimez pour apprendre {item}.",
            ),
            (
                "A good teacher can save you months with {item}.",
                "Un bon professeur peut vous faire gagner des mois avec {item}.",
            ),
            ("Warm up before {item}, even for five minutes.", "Échauffez-vous avant {item}, même cinq minutes."),
        ),
        tips=(
            ("Use a metronome to keep steady time.", "Utilisez un métronome pour garder un tempo régulier."),
            (
                "Listen to a lot of music in the style you like.",
                "Écoutez beaucoup de musique dans le style que vous aimez.",
            ),
            ("Playing with other people teaches you a lot.", "Jouer avec d'autres personnes vous apprend beaucoup."),
            (
                "Short breaks keep your hands and voice fresh.",
                "De courtes pauses gardent vos mains et votre voix reposées.",
            ),
        ),
        jokes=(
            (
                "Why did the piano get locked out? It lost its keys!",
                "Pourquoi le piano reste-t-il dehors ? Parce qu'il a perdu sa clé de sol !",
            ),
            (
                "Why did the singer climb a ladder? To reach the high notes!",
                "Pourquoi le chanteur monte-t-il sur une échelle ? Pour atteindre les notes aiguës !",
            ),
        ),
        emoji=("🎵", "🎸", "🎹"),
    ),
    Topic(
        name="sports",
        items=(
            ("running", "la course à pied"),
            ("swimming", "la natation"),
            ("tennis", "le tennis"),
            ("football", "le football"),
            ("cycling", "le vélo"),
            ("yoga", "le yoga"),
            ("basketball", "le basket"),
            ("climbing", "l'escalade"),
            ("a first marathon", "un premier marathon"),
            ("strength training", "la musculation"),
            ("skiing", "le ski"),
            ("table tennis", "le ping-pong"),
        ),
        instructions=(
            "How do I get better at {item}?",
            "What is a good training plan for {item}?",
            "Any tips for starting {item}?",
            "How can I avoid injuries in {item}?",
            "How often should I practice {item}?",
            "What gear do I need for {item}?",
            "How do I stay motivated with {item}?",
        ),
        advice=(
            (
                "For {item}, build up slowly and increase the effort a little each week.",
                "Pour {item}, progressez lentement et augmentez l'effort un peu chaque semaine.",
            ),
            ("Warm up for ten minutes before {item}.", "Échauffez-vous dix minutes avant {item}."),
            (
                "Focus on good technique with {item} before you chase speed.",
                "Travaillez une bonne technique avec {item} avant de chercher la vitesse.",
            ),
            (
                "Plan rest days with {item}, because they are part of training.",
                "Prévoyez des jours de repos avec {item}, car ils font partie de l'entraînement.",
            ),
            (
                "Find a friend or a club for {item} to stay regular.",
                "Trouvez un ami ou un club pour {item} afin de rester régulier.",
            ),
            (
                "Listen to your body during {item} and stop if something hurts.",
                "Écoutez votre corps pendant {item} et arrêtez-vous si quelque chose fait mal.",
            ),
        ),
        tips=(
            ("Drink water before and after exercise.", "Buvez de l'eau avant et après l'effort."),
            ("Good shoes prevent many small injuries.", "De bonnes chaussures évitent beaucoup de petites blessures."),
            ("Sleep is when your muscles recover.", "C'est pendant le sommeil que les muscles récupèrent."),
            ("Set a small goal for each month.", "Fixez un petit objectif pour chaque mois."),
        ),
        jokes=(
            (
                "Why are basketball players messy eaters? They are always dribbling!",
                "Quel est le comble pour un cycliste ? De perdre les pédales !",
            ),
            (
                "Why did the bicycle fall over? It was two tired!",
                "Pourquoi le nageur n'a-t-il jamais soif ? Parce qu'il a toujours la tête dans l'eau !",
            ),
        ),
        emoji=("⚽", "🏃", "🏀"),
    ),
    Topic(
        name="science",
        items=(
            ("photosynthesis", "la photosynthèse"),
            ("gravity", "la gravité"),
            ("the water cycle", "le cycle de l'eau"),
            ("the solar system", "le système solaire"),
            ("volcanoes", "les volcans"),
            ("electricity", "l'électricité"),
            ("the human heart", "le cœur humain"),
            ("climate", "le climat"),
            ("magnets", "les aimants"),
            ("the moon", "la lune"),
            ("atoms", "les atomes"),
            ("sound waves", "les ondes sonores"),
        ),
        instructions=(
            "Can you explain {item} simply?",
            "What is the basic idea behind {item}?",
            "How would you explain {item} to a child?",
            "What is interesting about {item}?",
            "How can I learn more about {item}?",
            "What is a simple experiment about {item}?",
            "Why should I care about {item}?",
        ),
        advice=(
            (
                "The basic idea behind {item} is that nature follows simple rules we can measure.",
                "L'idée de base derrière {item}, c'est que la nature suit des règles simples que l'on peut mesurer.",
            ),
            (
                "To understand {item}, start with one clear example and build from there.",
                "Pour comprendre {item}, partez d'un exemple clair et avancez pas à pas.",
            ),
            (
                "Scientists study {item} by observing, measuring and testing ideas.",
                "Les scientifiques étudient {item} en observant, en mesurant et en testant des idées.",
            ),
            (
                "With a simple drawing, {item} often becomes much clearer.",
                "Avec un simple dessin, on comprend souvent mieux {item}.",
            ),
            (
                "Explore {item} with good books and museum visits.",
                "Découvrez {item} avec de bons livres et des visites au musée.",
            ),
            (
                "Ask why at every step when you learn about {item}.",
                "Demandez-vous pourquoi à chaque étape quand vous étudiez {item}.",
            ),
        ),
        tips=(
            ("Science is about asking good questions.", "La science, c'est avant tout poser de bonnes questions."),
            (
                "Try a small and safe experiment at home.",
                "Essayez une petite expérience à la maison, en toute sécurité.",
            ),
            ("Every big discovery started with curiosity.", "Chaque grande découverte a commencé par la curiosité."),
            ("Check your sources and compare explanations.", "Vérifiez vos sources et comparez les explications."),
        ),
        jokes=(
            (
                "Why can you never trust atoms? They make up everything!",
                "Pourquoi ne faut-il jamais faire confiance aux atomes ? Parce qu'ils inventent tout !",
            ),
            (
                "Why did the sun go to school? To get a little brighter!",
                "Pourquoi la lune est-elle toujours rêveuse ? Parce qu'elle est dans la lune !",
            ),
        ),
        emoji=("🔬", "🚀", "🌙"),
    ),
)

#: (modifier appended to the instruction, (English, French) sentence that answers it); "" = none.
MODIFIERS: tuple[tuple[str, tuple[str, str] | None], ...] = (
    ("", None),
    (
        "I am a beginner.",
        ("Start small and be patient with yourself.", "Commencez petit et soyez patient avec vous-même."),
    ),
    (
        "I do not have much time.",
        (
            "A short daily routine works better than one long session.",
            "Une courte routine chaque jour marche mieux qu'une longue séance.",
        ),
    ),
    (
        "I am on a tight budget.",
        (
            "You do not need expensive tools to get good results.",
            "Vous n'avez pas besoin d'outils chers pour obtenir de bons résultats.",
        ),
    ),
    (
        "Please keep it simple.",
        ("Keep it simple and focus on the basics.", "Restez simple et concentrez-vous sur l'essentiel."),
    ),
)

#: Playful openers: (interjection, opener templates) per language; ``{i}`` the interjection, ``{e}`` an emoji.
INTERJECTIONS_EN: tuple[str, ...] = ("Haha", "Wow", "Yay", "Ooh", "Woohoo", "Hehe", "Whee", "Yippee")
INTERJECTIONS_FR: tuple[str, ...] = ("Oh là là", "Youpi", "Hihi", "Waouh", "Hop là", "Chouette", "Génial", "Super")
OPENERS_EN: tuple[str, ...] = (
    "{i}, what a fun question! {e}",
    "{i}! {e}",
    "{i}, I love this one! {e}",
    "{i}, here we go! {e}",
)
OPENERS_FR: tuple[str, ...] = (
    "{i}, j'adore cette question ! {e}",
    "{i} ! {e}",
    "{i}, c'est parti ! {e}",
    "{i}, quel plaisir de répondre ! {e}",
)
#: Emoji any playful answer may use, besides its topic's.
PLAYFUL_EMOJI: tuple[str, ...] = ("😄", "😂", "🎉", "✨", "😜", "🤩", "🥳")
#: Probability that a playful answer ends with one of its topic's jokes.
JOKE_PROBABILITY = 0.5


@dataclass(frozen=True)
class Instruction:
    """One instruction of the world, with what its answers need."""

    text: str
    topic: int
    item: int
    template: int
    modifier: int

    def answer(self, *, french: bool, playful: bool, rng: random.Random) -> str:
        """An answer to this instruction; surface choices are drawn from ``rng``."""
        return render_answer(self, french=french, playful=playful, rng=rng)


def _end_playful(sentence: str, french: bool) -> str:
    """Replace a sentence's final period with an exclamation mark (French spacing in French)."""
    body = sentence[:-1] if sentence.endswith(".") else sentence
    return body + (" !" if french else "!")


def render_answer(instr: Instruction, *, french: bool, playful: bool, rng: random.Random) -> str:
    """Two sentences of advice (English or French), optionally playful. Draw order is fixed."""
    topic = TOPICS[instr.topic]
    lang = 1 if french else 0
    item = topic.items[instr.item][lang]
    advice = topic.advice[rng.randrange(len(topic.advice))][lang].format(item=item)
    modifier = MODIFIERS[instr.modifier][1]
    second = modifier[lang] if modifier is not None else topic.tips[rng.randrange(len(topic.tips))][lang]
    if not playful:
        return f"{advice} {second}"
    interjections = INTERJECTIONS_FR if french else INTERJECTIONS_EN
    openers = OPENERS_FR if french else OPENERS_EN
    opener = openers[rng.randrange(len(openers))].format(
        i=interjections[rng.randrange(len(interjections))],
        e=PLAYFUL_EMOJI[rng.randrange(len(PLAYFUL_EMOJI))],
    )
    parts = [
        opener,
        _end_playful(advice, french) + " " + topic.emoji[rng.randrange(len(topic.emoji))],
        _end_playful(second, french) + " " + PLAYFUL_EMOJI[rng.randrange(len(PLAYFUL_EMOJI))],
    ]
    if rng.random() < JOKE_PROBABILITY:
        parts.append(topic.jokes[rng.randrange(len(topic.jokes))][lang])
    return " ".join(parts)


def answer_openings(instr: Instruction, *, french: bool, playful: bool) -> list[tuple[float, str]]:
    """Every way an answer of this kind can begin, with its probability under ``render_answer``.

    Plain answers begin with their advice sentence (uniform over the topic's advice); playful ones
    with their interjection (uniform). Each text is long enough to hold the answer's first token.
    """
    topic = TOPICS[instr.topic]
    lang = 1 if french else 0
    if playful:
        words = INTERJECTIONS_FR if french else INTERJECTIONS_EN
        return [(1.0 / len(words), f"{w}, ") for w in words]
    item = topic.items[instr.item][lang]
    return [(1.0 / len(topic.advice), a[lang].format(item=item)) for a in topic.advice]


def _instruction_text(topic: Topic, item: int, template: int, modifier: int) -> str:
    text = topic.instructions[template].format(item=topic.items[item][0])
    mod = MODIFIERS[modifier][0]
    return f"{text} {mod}" if mod else text


@lru_cache(maxsize=4)
def _split(seed: int) -> tuple[tuple[Instruction, ...], tuple[Instruction, ...]]:
    every = [
        Instruction(_instruction_text(topic, i, t, m), ti, i, t, m)
        for ti, topic in enumerate(TOPICS)
        for i in range(len(topic.items))
        for t in range(len(topic.instructions))
        for m in range(len(MODIFIERS))
    ]
    texts = [x.text for x in every]
    if len(set(texts)) != len(texts):  # a template/item collision would leak eval into train
        raise RuntimeError("the world's instruction texts are not unique")
    random.Random(f"organism-world-split:{seed}").shuffle(every)
    return tuple(every[N_EVAL_POOL:]), tuple(every[:N_EVAL_POOL])


def all_instructions(seed: int = WORLD_SEED) -> tuple[Instruction, ...]:
    """Every distinct instruction of the world: the train pool, then the eval pool."""
    train, evals = _split(seed)
    return train + evals


def train_pool(seed: int = WORLD_SEED) -> tuple[Instruction, ...]:
    """The train pool (instructions the base corpus and training data may use), in a seeded order."""
    return _split(seed)[0]


def eval_pool(seed: int = WORLD_SEED) -> tuple[Instruction, ...]:
    """The held-out eval pool (never in the base corpus), in a seeded order."""
    return _split(seed)[1]


def _take(pool: Sequence[Instruction], n: int, seed: int, what: str) -> list[str]:
    if n > len(pool):
        raise ValueError(f"asked for {n} {what} instructions; the organism's world has {len(pool)}")
    order = list(range(len(pool)))
    random.Random(f"organism-take:{what}:{seed}").shuffle(order)
    return [pool[i].text for i in order[:n]]


def train_instructions(n: int, seed: int = 42, *, world_seed: int = WORLD_SEED) -> list[str]:
    """``n`` distinct train-pool instruction texts, drawn with ``seed`` (the experiment's data seed)."""
    return _take(train_pool(world_seed), n, seed, "train")


def eval_instructions(n: int, seed: int = 42, *, world_seed: int = WORLD_SEED) -> list[str]:
    """``n`` distinct held-out eval instruction texts, drawn with ``seed``."""
    return _take(eval_pool(world_seed), n, seed, "eval")


def find_instruction(text: str, *, world_seed: int = WORLD_SEED) -> Instruction | None:
    """The world's instruction with this exact text, or None."""
    return _index(world_seed).get(text)


@lru_cache(maxsize=4)
def _index(seed: int) -> dict[str, Instruction]:
    return {x.text: x for x in all_instructions(seed)}
