"""Words and sentence templates of the embedded synthetic persona world, English and Chinese.

Each category has values (unique words across all categories, so a value names its fact),
persona sentences, partner questions and role answers. `{v}` is the value.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    name: str
    values: tuple[str, ...]
    persona: tuple[str, ...]
    questions: tuple[str, ...]
    answers: tuple[str, ...]


@dataclass(frozen=True)
class Lexicon:
    categories: tuple[Category, ...]
    greetings: tuple[str, ...]
    replies: tuple[str, ...]
    acks: tuple[str, ...]
    separator: str


EN = Lexicon(
    categories=(
        Category("hobby", ("hiking", "painting", "chess", "fishing", "gardening", "knitting"),
                 ("i love {v}.", "my favourite hobby is {v}.", "in my free time i enjoy {v}."),
                 ("what do you do for fun ?", "any hobbies ?", "what do you do on weekends ?"),
                 ("i spend my weekends {v} .", "i really enjoy {v} .", "mostly {v} , i love it .")),
        Category("job", ("nurse", "teacher", "chef", "pilot", "farmer", "lawyer"),
                 ("i work as a {v}.", "i am a {v}.", "my job is {v}."),
                 ("what do you do for work ?", "what is your job ?", "where do you work ?"),
                 ("i am a {v} .", "i work as a {v} .", "i am a {v} , long days .")),
        Category("pet", ("dog", "cat", "parrot", "rabbit", "turtle", "horse"),
                 ("i have a {v}.", "my best friend is my {v}.", "i live with a {v}."),
                 ("do you have pets ?", "any animals at home ?", "do you like animals ?"),
                 ("yes , i have a {v} .", "i own a {v} .", "my {v} is waiting at home .")),
        Category("food", ("pizza", "sushi", "tacos", "pasta", "curry", "salad"),
                 ("i eat {v} every day.", "my favourite food is {v}.", "i could live on {v}."),
                 ("what is your favourite food ?", "what do you like to eat ?", "hungry ? what for ?"),
                 ("i love {v} .", "{v} , always {v} .", "i had {v} for dinner .")),
        Category("music", ("jazz", "rock", "country", "opera", "techno", "blues"),
                 ("i listen to {v}.", "{v} is my favourite music.", "i play {v} on weekends."),
                 ("what music do you like ?", "who do you listen to ?", "do you like music ?"),
                 ("i listen to {v} .", "mostly {v} .", "{v} all day long .")),
        Category("drink", ("coffee", "tea", "juice", "milk", "soda", "cocoa"),
                 ("i drink {v} every morning.", "{v} is my favourite drink.", "i never skip my {v}."),
                 ("what do you drink ?", "coffee or tea ?", "what is your favourite drink ?"),
                 ("i drink {v} .", "a cup of {v} please .", "{v} , every morning .")),
        Category("sport", ("tennis", "soccer", "golf", "swimming", "boxing", "cycling"),
                 ("i play {v}.", "{v} keeps me fit.", "i watch {v} on tv."),
                 ("do you play any sport ?", "do you like sports ?", "how do you stay fit ?"),
                 ("i do {v} .", "{v} twice a week .", "i love {v} .")),
        Category("color", ("red", "blue", "green", "yellow", "purple", "black"),
                 ("my favourite color is {v}.", "i paint my room {v}.", "i always wear {v}."),
                 ("what is your favourite color ?", "what color do you like ?", "nice shirt , color ?"),
                 ("i like {v} .", "{v} , definitely .", "always {v} .")),
    ),
    greetings=("hi , how are you ?", "hello !", "hey there .", "good evening !"),
    replies=("i am good , thanks .", "hello , nice to meet you .", "hi ! doing well .", "hey !"),
    acks=("nice .", "cool .", "oh really ?", "that is great .", "i see ."),
    separator=".",
)

ZH = Lexicon(
    categories=(
        Category("hobby", ("爬山", "画画", "下棋", "钓鱼", "种花", "织毛衣"),
                 ("我喜欢{v}。", "我的爱好是{v}。", "有空我就去{v}。"),
                 ("你平时喜欢做什么？", "你有什么爱好？", "周末一般干什么？"),
                 ("我周末都去{v}。", "我很喜欢{v}。", "主要是{v}吧。")),
        Category("job", ("护士", "老师", "厨师", "飞行员", "农民", "律师"),
                 ("我是一名{v}。", "我的工作是{v}。", "我当{v}很多年了。"),
                 ("你做什么工作？", "你的职业是什么？", "你在哪里上班？"),
                 ("我是{v}。", "我当{v}。", "我是{v}，每天很忙。")),
        Category("pet", ("小狗", "小猫", "鹦鹉", "兔子", "乌龟", "小马"),
                 ("我养了一只{v}。", "我最好的朋友是我的{v}。", "我和一只{v}住在一起。"),
                 ("你养宠物吗？", "家里有小动物吗？", "你喜欢动物吗？"),
                 ("养了一只{v}。", "我有一只{v}。", "我的{v}在家等我。")),
        Category("food", ("披萨", "寿司", "饺子", "面条", "火锅", "沙拉"),
                 ("我每天都吃{v}。", "我最爱吃{v}。", "我离不开{v}。"),
                 ("你最喜欢吃什么？", "你爱吃什么？", "饿了吗？想吃什么？"),
                 ("我爱吃{v}。", "{v}，永远是{v}。", "我晚饭吃了{v}。")),
        Category("music", ("爵士", "摇滚", "民谣", "歌剧", "电音", "蓝调"),
                 ("我听{v}。", "{v}是我最爱的音乐。", "我周末弹{v}。"),
                 ("你喜欢什么音乐？", "你平时听什么？", "你喜欢音乐吗？"),
                 ("我听{v}。", "主要听{v}。", "整天听{v}。")),
        Category("drink", ("咖啡", "绿茶", "果汁", "牛奶", "可乐", "豆浆"),
                 ("我每天早上喝{v}。", "{v}是我最爱的饮料。", "我离不开{v}。"),
                 ("你喝什么？", "咖啡还是茶？", "你最喜欢喝什么？"),
                 ("我喝{v}。", "来一杯{v}。", "每天早上一杯{v}。")),
        Category("sport", ("网球", "足球", "高尔夫", "游泳", "拳击", "骑行"),
                 ("我打{v}。", "{v}让我保持健康。", "我在电视上看{v}。"),
                 ("你做什么运动？", "你喜欢运动吗？", "你怎么锻炼？"),
                 ("我玩{v}。", "每周两次{v}。", "我爱{v}。")),
        Category("color", ("红色", "蓝色", "绿色", "黄色", "紫色", "黑色"),
                 ("我最喜欢{v}。", "我的房间是{v}的。", "我总是穿{v}。"),
                 ("你最喜欢什么颜色？", "你喜欢什么颜色？", "衣服真好看，什么颜色？"),
                 ("我喜欢{v}。", "当然是{v}。", "一直是{v}。")),
    ),
    greetings=("你好，最近怎么样？", "哈喽！", "嗨，你好。", "晚上好！"),
    replies=("挺好的，谢谢。", "你好，很高兴认识你。", "嗨！还不错。", "嘿！"),
    acks=("不错。", "真酷。", "真的吗？", "太好了。", "原来如此。"),
    separator="。",
)

LEXICONS = {"en": EN, "zh": ZH}
